// Package apiclient holds small clients for the HTTP APIs of the services
// the flake deploys: Ollama (/api/tags, /api/generate, /api/chat, streamed
// as NDJSON) and ComfyUI (/system_stats, /prompt, /history, progress over
// its websocket). The integration tests and the performance harness use them.
package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Default addresses of the services when OLLAMA_HOST / COMFYUI_URL are unset.
const (
	DefaultOllama  = "http://127.0.0.1:11434"
	DefaultComfyUI = "http://127.0.0.1:8188"
)

// NormalizeOllamaHost turns an OLLAMA_HOST value ("127.0.0.1:11434",
// "0.0.0.0", "https://ollama.example") into a base URL, as the ollama CLI
// reads it.
func NormalizeOllamaHost(h string) string {
	h = strings.TrimRight(strings.TrimSpace(h), "/")
	if h == "" {
		return DefaultOllama
	}
	if !strings.Contains(h, "://") {
		h = "http://" + h
	}
	u, err := url.Parse(h)
	if err != nil {
		return h
	}
	host, port := u.Hostname(), u.Port()
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "11434"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	u.Host = net.JoinHostPort(host, port)
	return u.String()
}

// APIError is a non-2xx answer with the service's error message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

func apiError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && len(e.Error) > 0 {
		var s string
		var obj struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(e.Error, &s) == nil:
			msg = s
		case json.Unmarshal(e.Error, &obj) == nil && obj.Message != "":
			msg = obj.Message
		}
	}
	return &APIError{Status: resp.StatusCode, Message: msg}
}

// Ollama is a client of the Ollama API.
type Ollama struct {
	BaseURL string
	HTTP    *http.Client
}

// NewOllama returns a client for an OLLAMA_HOST value ("" for the default).
func NewOllama(host string) *Ollama {
	return &Ollama{BaseURL: NormalizeOllamaHost(host), HTTP: &http.Client{}}
}

// Model is an entry of /api/tags.
type Model struct {
	Name       string    `json:"name"`
	Model      string    `json:"model"`
	ModifiedAt time.Time `json:"modified_at"`
	Size       int64     `json:"size"`
	Digest     string    `json:"digest"`
	Details    struct {
		Format            string   `json:"format"`
		Family            string   `json:"family"`
		Families          []string `json:"families"`
		ParameterSize     string   `json:"parameter_size"`
		QuantizationLevel string   `json:"quantization_level"`
	} `json:"details"`
}

// Tags lists the local models (GET /api/tags).
func (c *Ollama) Tags(ctx context.Context) ([]Model, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/api/tags", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp)
	}
	var out struct {
		Models []Model `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("/api/tags: %w", err)
	}
	return out.Models, nil
}

// Stats are the timings Ollama reports in the final chunk (nanoseconds).
type Stats struct {
	DoneReason         string `json:"done_reason,omitempty"`
	TotalDuration      int64  `json:"total_duration,omitempty"`
	LoadDuration       int64  `json:"load_duration,omitempty"`
	PromptEvalCount    int    `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64  `json:"prompt_eval_duration,omitempty"`
	EvalCount          int    `json:"eval_count,omitempty"`
	EvalDuration       int64  `json:"eval_duration,omitempty"`
}

// GenerateRequest is the body of /api/generate.
type GenerateRequest struct {
	Model   string         `json:"model"`
	Prompt  string         `json:"prompt"`
	Stream  *bool          `json:"stream,omitempty"`
	Options map[string]any `json:"options,omitempty"`
}

// GenerateChunk is one NDJSON line of /api/generate.
type GenerateChunk struct {
	Model     string    `json:"model"`
	CreatedAt time.Time `json:"created_at"`
	Response  string    `json:"response"`
	Done      bool      `json:"done"`
	Context   []int     `json:"context,omitempty"`
	Stats
}

// Message is a chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is the body of /api/chat.
type ChatRequest struct {
	Model    string         `json:"model"`
	Messages []Message      `json:"messages"`
	Stream   *bool          `json:"stream,omitempty"`
	Options  map[string]any `json:"options,omitempty"`
}

// ChatChunk is one NDJSON line of /api/chat.
type ChatChunk struct {
	Model     string    `json:"model"`
	CreatedAt time.Time `json:"created_at"`
	Message   Message   `json:"message"`
	Done      bool      `json:"done"`
	Stats
}

// Generate posts to /api/generate and calls fn for each streamed chunk
// (fn may be nil). It returns the final chunk (done=true) with the whole
// response text in Response.
func (c *Ollama) Generate(ctx context.Context, r GenerateRequest, fn func(GenerateChunk) error) (GenerateChunk, error) {
	var text strings.Builder
	var last GenerateChunk
	err := c.stream(ctx, "/api/generate", r, func(line []byte) (bool, error) {
		var ch GenerateChunk
		if err := json.Unmarshal(line, &ch); err != nil {
			return false, fmt.Errorf("/api/generate: %w", err)
		}
		text.WriteString(ch.Response)
		if fn != nil {
			if err := fn(ch); err != nil {
				return false, err
			}
		}
		last = ch
		return ch.Done, nil
	})
	last.Response = text.String()
	return last, err
}

// Chat posts to /api/chat and calls fn for each streamed chunk (fn may be
// nil). It returns the final chunk with the whole reply in Message.Content.
func (c *Ollama) Chat(ctx context.Context, r ChatRequest, fn func(ChatChunk) error) (ChatChunk, error) {
	var text strings.Builder
	var last ChatChunk
	err := c.stream(ctx, "/api/chat", r, func(line []byte) (bool, error) {
		var ch ChatChunk
		if err := json.Unmarshal(line, &ch); err != nil {
			return false, fmt.Errorf("/api/chat: %w", err)
		}
		text.WriteString(ch.Message.Content)
		if fn != nil {
			if err := fn(ch); err != nil {
				return false, err
			}
		}
		last = ch
		return ch.Done, nil
	})
	last.Message = Message{Role: "assistant", Content: text.String()}
	return last, err
}

// stream posts body to path and hands each NDJSON line to fn until it
// reports done.
func (c *Ollama) stream(ctx context.Context, path string, body any, fn func([]byte) (bool, error)) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(line, &e) == nil && e.Error != "" {
			return &APIError{Status: resp.StatusCode, Message: e.Error}
		}
		done, err := fn(line)
		if err != nil || done {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%s: stream ended before done", path)
}
