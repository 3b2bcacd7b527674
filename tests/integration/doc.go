// Package integration drives the services the flake deploys (Ollama and
// ComfyUI) through their HTTP APIs. Its tests are contract suites: each
// case states the behaviour the project relies on (status codes and
// parsed bodies) and runs against the loopback fakes of tests/fakes
// always, and against the real service too when OLLAMA_HOST / COMFYUI_URL
// is set or IPEX_LIVE=1 (as `ci test --stage integration` sets it).
//
// Tests that need an Ollama model take it from -model (go test
// ./tests/integration -args -model NAME), OLLAMA_MODEL, or the first model
// the server lists; with none they are skipped with that advice (failed
// under CI=true or IPEX_LIVE=1). The thinking test takes
// OLLAMA_THINKING_MODEL or the first model with the "thinking"
// capability. The client sends think: false with every request unless
// -think is given. The ComfyUI prompt test queues COMFYUI_WORKFLOW
// (default tests/performance/txt2img.json).
package integration
