// Package fakes serves the Ollama and ComfyUI HTTP APIs from responses
// recorded from the real services (testdata/), on loopback httptest
// servers. The integration tests and the performance harness use them when
// no real service is configured.
package fakes

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
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

// Ollama is a fake Ollama server.
type Ollama struct {
	*httptest.Server
	// Requests counts generate and chat requests.
	Requests atomic.Int64
}

// NewOllama starts a fake Ollama on loopback. Close it when done.
func NewOllama() *Ollama {
	o := &Ollama{}
	tags := mustRead("ollama/tags.json")
	gen := lines(mustRead("ollama/generate.ndjson"))
	chat := lines(mustRead("ollama/chat.ndjson"))
	var models struct {
		Models []struct{ Name string } `json:"models"`
	}
	_ = json.Unmarshal(tags, &models)
	known := map[string]bool{}
	for _, m := range models.Models {
		known[m.Name] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(tags)
	})
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"version":"0.5.4"}`))
	})
	stream := func(recordedLines [][]byte, field string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			o.Requests.Add(1)
			var req struct {
				Model  string `json:"model"`
				Stream *bool  `json:"stream"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, `{"error":"invalid request body"}`, http.StatusBadRequest)
				return
			}
			if !known[req.Model] {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"error":"model %q not found, try pulling it first"}`, req.Model)
				return
			}
			if req.Stream != nil && !*req.Stream {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				_, _ = w.Write(aggregate(recordedLines, field, req.Model))
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			fl, _ := w.(http.Flusher)
			for _, l := range recordedLines {
				_, _ = w.Write(withModel(l, req.Model))
				_, _ = w.Write([]byte("\n"))
				if fl != nil {
					fl.Flush()
				}
			}
		}
	}
	mux.HandleFunc("POST /api/generate", stream(gen, "response"))
	mux.HandleFunc("POST /api/chat", stream(chat, "message"))
	o.Server = httptest.NewServer(mux)
	return o
}

func withModel(line []byte, model string) []byte {
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return line
	}
	m["model"] = model
	out, _ := json.Marshal(m)
	return out
}

// aggregate turns a recorded stream into the single response of
// "stream": false: the text concatenated into the final object.
func aggregate(ls [][]byte, field, model string) []byte {
	var text strings.Builder
	var last map[string]any
	for _, l := range ls {
		var m map[string]any
		_ = json.Unmarshal(l, &m)
		switch v := m[field].(type) {
		case string:
			text.WriteString(v)
		case map[string]any:
			s, _ := v["content"].(string)
			text.WriteString(s)
		}
		last = m
	}
	if field == "message" {
		last["message"] = map[string]any{"role": "assistant", "content": text.String()}
	} else {
		last[field] = text.String()
	}
	last["model"] = model
	out, _ := json.Marshal(last)
	return out
}

// ComfyUI is a fake ComfyUI server: prompts complete at once, progress is
// replayed over the websocket of the client that queued them.
type ComfyUI struct {
	*httptest.Server
	// Prompts counts queued prompts.
	Prompts atomic.Int64

	mu      sync.Mutex
	clients map[string]chan []byte
	done    map[string]bool
	next    atomic.Int64
}

// NewComfyUI starts a fake ComfyUI on loopback. Close it when done.
func NewComfyUI() *ComfyUI {
	c := &ComfyUI{clients: map[string]chan []byte{}, done: map[string]bool{}}
	stats := mustRead("comfyui/system_stats.json")
	history := string(mustRead("comfyui/history.json"))
	events := lines(mustRead("comfyui/ws.ndjson"))
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /system_stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(stats)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("clientId")
		if id == "" {
			id = fmt.Sprintf("%032x", c.next.Add(1))
		}
		// Register before the handshake completes: a client may queue a
		// prompt as soon as its dial returns.
		ch := make(chan []byte, 256)
		c.mu.Lock()
		c.clients[id] = ch
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.clients, id)
			c.mu.Unlock()
		}()
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		status := fmt.Sprintf(`{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": %q}}`, id)
		if conn.WriteMessage(websocket.TextMessage, []byte(status)) != nil {
			return
		}
		closed := make(chan struct{})
		go func() { // read until the client goes away
			defer close(closed)
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for {
			select {
			case msg := <-ch:
				if conn.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
			case <-closed:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST /prompt", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt   map[string]json.RawMessage `json:"prompt"`
			ClientID string                     `json:"client_id"`
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Prompt) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}`))
			return
		}
		if !hasOutput(req.Prompt) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}, "node_errors": {}}`))
			return
		}
		n := c.Prompts.Add(1)
		id := fmt.Sprintf("6f1c2a4e-0b7d-4e4f-9a51-%012x", n)
		c.mu.Lock()
		c.done[id] = true
		ch := c.clients[req.ClientID]
		c.mu.Unlock()
		if ch != nil {
			for _, e := range events {
				ch <- bytes.ReplaceAll(e, []byte("PROMPT_ID"), []byte(id))
			}
		}
		fmt.Fprintf(w, `{"prompt_id": %q, "number": %d, "node_errors": {}}`, id, n-1)
	})
	mux.HandleFunc("GET /history/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		w.Header().Set("Content-Type", "application/json")
		c.mu.Lock()
		ok := c.done[id]
		c.mu.Unlock()
		if !ok {
			_, _ = w.Write([]byte("{}"))
			return
		}
		_, _ = w.Write([]byte(strings.ReplaceAll(history, "PROMPT_ID", id)))
	})
	c.Server = httptest.NewServer(mux)
	return c
}

// hasOutput reports whether a workflow has an output node (SaveImage,
// PreviewImage), as ComfyUI's validation requires.
func hasOutput(prompt map[string]json.RawMessage) bool {
	for _, raw := range prompt {
		var n struct {
			ClassType string `json:"class_type"`
		}
		if json.Unmarshal(raw, &n) == nil && (n.ClassType == "SaveImage" || n.ClassType == "PreviewImage") {
			return true
		}
	}
	return false
}
