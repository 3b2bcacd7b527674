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
	"strconv"
	"strings"
	"time"
)

// Default addresses of the services when OLLAMA_HOST / COMFYUI_URL are unset.
const (
	DefaultOllama  = "http://127.0.0.1:11434"
	DefaultComfyUI = "http://127.0.0.1:8188"
)

// NormalizeOllamaHost turns an OLLAMA_HOST value into a base URL exactly as
// the ollama CLI does (envconfig.Host in ollama/ollama): surrounding space
// and quotes are dropped; without a scheme the scheme is http and the
// default port 11434 ("ollama.com" alone means https://ollama.com:443);
// with "http://" the default port is 80 and with "https://" 443; an
// address that is not host:port keeps the default port (a bare IPv6
// address is bracketed); an invalid port falls back to the default; a
// path after the host is kept (a reverse proxy prefix). Unspecified bind
// addresses (0.0.0.0, [::]) are kept as the CLI keeps them: on Linux a
// connection to them reaches the local host.
func NormalizeOllamaHost(h string) string {
	defaultPort := "11434"
	s := strings.Trim(strings.TrimSpace(h), "\"'")
	s = strings.TrimSpace(s)
	scheme, hostport, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		scheme, hostport = "http", s
		if s == "ollama.com" {
			scheme, hostport = "https", "ollama.com:443"
		}
	case scheme == "http":
		defaultPort = "80"
	case scheme == "https":
		defaultPort = "443"
	}
	hostport, path, _ := strings.Cut(hostport, "/")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = "127.0.0.1", defaultPort
		if ip := net.ParseIP(strings.Trim(hostport, "[]")); ip != nil {
			host = ip.String()
		} else if hostport != "" {
			host = hostport
		}
	}
	if n, err := strconv.ParseInt(port, 10, 32); err != nil || n > 65535 || n < 0 {
		port = defaultPort
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: path}
	return u.String()
}

// NormalizeModel returns an Ollama model name in the shortest name:tag form
// the server lists in /api/tags: a missing tag is "latest" and the default
// registry and namespace (registry.ollama.ai/library/) are dropped.
// "tiny" and "registry.ollama.ai/library/tiny:latest" are "tiny:latest".
func NormalizeModel(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	name = strings.TrimPrefix(name, "registry.ollama.ai/")
	name = strings.TrimPrefix(name, "library/")
	slash := strings.LastIndex(name, "/")
	if !strings.Contains(name[slash+1:], ":") {
		name += ":latest"
	}
	return name
}

// SameModel reports whether two model names name the same model (Ollama
// matches names without regard to case).
func SameModel(a, b string) bool {
	return strings.EqualFold(NormalizeModel(a), NormalizeModel(b))
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
	// Think is sent as "think" with every generate and chat request that
	// does not set its own: Ollama turns thinking on by default for models
	// that support it, so the client always says which it wants (off
	// unless this is true).
	Think bool
}

// NewOllama returns a client for an OLLAMA_HOST value ("" for the default).
func NewOllama(host string) *Ollama {
	return &Ollama{BaseURL: NormalizeOllamaHost(host), HTTP: &http.Client{}}
}

// ModelDetails describes a model's format and size, in /api/tags and
// /api/show.
type ModelDetails struct {
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// Model is an entry of /api/tags.
type Model struct {
	Name       string       `json:"name"`
	Model      string       `json:"model"`
	ModifiedAt time.Time    `json:"modified_at"`
	Size       int64        `json:"size"`
	Digest     string       `json:"digest"`
	Details    ModelDetails `json:"details"`
}

// do sends a request with an optional JSON body and decodes a 200 answer
// into out (nil: discard); any other status is an *APIError.
func (c *Ollama) do(ctx context.Context, method, path string, body, out any) error {
	return doJSON(ctx, c.HTTP, method, c.BaseURL, path, body, out)
}

// doJSON sends method base+path with an optional JSON body and decodes a
// 200 answer into out (nil: discard); any other status is an *APIError.
func doJSON(ctx context.Context, hc *http.Client, method, base, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Tags lists the local models (GET /api/tags).
func (c *Ollama) Tags(ctx context.Context) ([]Model, error) {
	var out struct {
		Models []Model `json:"models"`
	}
	err := c.do(ctx, http.MethodGet, "/api/tags", nil, &out)
	return out.Models, err
}

// Version is the server's version (GET /api/version).
func (c *Ollama) Version(ctx context.Context) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	err := c.do(ctx, http.MethodGet, "/api/version", nil, &out)
	return out.Version, err
}

// ModelInfo is the answer of POST /api/show.
type ModelInfo struct {
	Modelfile  string         `json:"modelfile"`
	Parameters string         `json:"parameters"`
	Template   string         `json:"template"`
	Details    ModelDetails   `json:"details"`
	ModelInfo  map[string]any `json:"model_info"`
	// Capabilities are "completion", "thinking", "tools", "vision", ...
	Capabilities []string  `json:"capabilities"`
	ModifiedAt   time.Time `json:"modified_at"`
}

// Can reports whether the model has a capability ("thinking", ...).
func (m ModelInfo) Can(capability string) bool {
	for _, c := range m.Capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// Show describes a local model (POST /api/show).
func (c *Ollama) Show(ctx context.Context, model string) (ModelInfo, error) {
	var out ModelInfo
	err := c.do(ctx, http.MethodPost, "/api/show", map[string]string{"model": model}, &out)
	return out, err
}

// Running is an entry of /api/ps: a model loaded in memory.
type Running struct {
	Name      string    `json:"name"`
	Model     string    `json:"model"`
	Size      int64     `json:"size"`
	SizeVRAM  int64     `json:"size_vram"`
	Digest    string    `json:"digest"`
	ExpiresAt time.Time `json:"expires_at"`
	// ContextLength is reported by newer servers.
	ContextLength int `json:"context_length,omitempty"`
}

// PS lists the models loaded in memory (GET /api/ps).
func (c *Ollama) PS(ctx context.Context) ([]Running, error) {
	var out struct {
		Models []Running `json:"models"`
	}
	err := c.do(ctx, http.MethodGet, "/api/ps", nil, &out)
	return out.Models, err
}

// Load loads a model into memory without generating (a generate request
// with an empty prompt, answered with done_reason "load").
func (c *Ollama) Load(ctx context.Context, model string) (GenerateChunk, error) {
	no := false
	final, err := c.Generate(ctx, GenerateRequest{Model: model, Stream: &no, Think: &no}, nil)
	if err == nil && final.DoneReason != "load" {
		err = fmt.Errorf("loading %s: done_reason %q, want \"load\"", model, final.DoneReason)
	}
	return final, err
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
	Model  string `json:"model"`
	Prompt string `json:"prompt"`
	Stream *bool  `json:"stream,omitempty"`
	// Think turns the model's reasoning on or off; nil sends the client's
	// Think setting.
	Think   *bool          `json:"think,omitempty"`
	Options map[string]any `json:"options,omitempty"`
}

// GenerateChunk is one NDJSON line of /api/generate.
type GenerateChunk struct {
	Model     string    `json:"model"`
	CreatedAt time.Time `json:"created_at"`
	Response  string    `json:"response"`
	// Thinking is the model's reasoning, streamed apart from Response.
	Thinking string `json:"thinking,omitempty"`
	Done     bool   `json:"done"`
	Context  []int  `json:"context,omitempty"`
	Stats
}

// Message is a chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// Thinking is the reasoning of an assistant message.
	Thinking string `json:"thinking,omitempty"`
}

// ChatRequest is the body of /api/chat.
type ChatRequest struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	Stream   *bool     `json:"stream,omitempty"`
	// Think turns the model's reasoning on or off; nil sends the client's
	// Think setting.
	Think   *bool          `json:"think,omitempty"`
	Options map[string]any `json:"options,omitempty"`
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
	if r.Think == nil {
		r.Think = &c.Think
	}
	last, text, thinking, err := collect(ctx, c, "/api/generate", r, fn)
	last.Response, last.Thinking = text, thinking
	return last, err
}

// Chat posts to /api/chat and calls fn for each streamed chunk (fn may be
// nil). It returns the final chunk with the whole reply in Message.Content.
func (c *Ollama) Chat(ctx context.Context, r ChatRequest, fn func(ChatChunk) error) (ChatChunk, error) {
	if r.Think == nil {
		r.Think = &c.Think
	}
	last, text, thinking, err := collect(ctx, c, "/api/chat", r, fn)
	last.Message = Message{Role: "assistant", Content: text, Thinking: thinking}
	return last, err
}

// chunk is a streamed line of /api/generate or /api/chat.
type chunk interface {
	GenerateChunk | ChatChunk
	// parts are the chunk's piece of the reply and of the reasoning.
	parts() (text, thinking string)
	// done reports whether the chunk is the final one.
	done() bool
}

func (ch GenerateChunk) parts() (string, string) { return ch.Response, ch.Thinking }
func (ch GenerateChunk) done() bool              { return ch.Done }
func (ch ChatChunk) parts() (string, string)     { return ch.Message.Content, ch.Message.Thinking }
func (ch ChatChunk) done() bool                  { return ch.Done }

// collect streams body to path, decodes each line as a C and hands it to
// fn (when not nil); it returns the final chunk and the reply and
// reasoning joined from all chunks.
func collect[C chunk](ctx context.Context, c *Ollama, path string, body any, fn func(C) error) (last C, text, thinking string, err error) {
	var tb, thb strings.Builder
	err = c.stream(ctx, path, body, func(line []byte) (bool, error) {
		var ch C
		if err := json.Unmarshal(line, &ch); err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		t, th := ch.parts()
		tb.WriteString(t)
		thb.WriteString(th)
		if fn != nil {
			if err := fn(ch); err != nil {
				return false, err
			}
		}
		last = ch
		return ch.done(), nil
	})
	return last, tb.String(), thb.String(), err
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
