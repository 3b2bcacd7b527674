// Package integration drives the services the flake deploys (Ollama and
// ComfyUI) through their HTTP APIs. With OLLAMA_HOST / COMFYUI_URL set, or
// IPEX_LIVE=1 (as `ci test --stage integration` sets it), the tests hit the
// real services; otherwise they run against loopback fakes that replay
// responses recorded from the real APIs (tests/fakes/testdata).
package integration
