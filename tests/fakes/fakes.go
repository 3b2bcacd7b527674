// Package fakes serves the Ollama and ComfyUI HTTP APIs from responses
// recorded from the real services (testdata/), as http.Handlers and on
// loopback httptest servers. They answer as the real servers do, error
// bodies included: the contract suites in tests/integration run against
// them always and against the real servers when those are configured. The
// integration tests and the performance harness use them when no real
// service is configured.
//
// The generate, chat, tags and ComfyUI answers were recorded from the real
// services; the thinking streams (ollama/*-thinking.ndjson) and the
// /api/show answers (ollama/show.json) are written in the server's wire
// format from its source (api/types.go, server/routes.go of ollama/ollama),
// and the error answers follow that source case for case.
package fakes

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
)

//go:embed testdata
var recorded embed.FS

func mustRead(name string) []byte {
	data, err := recorded.ReadFile("testdata/" + name)
	if err != nil {
		panic(err)
	}
	return data
}

func lines(data []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, append([]byte(nil), l...))
		}
	}
	return out
}

// Workflow is the recorded ComfyUI API-format txt2img workflow.
func Workflow() json.RawMessage { return mustRead("comfyui/workflow.json") }
