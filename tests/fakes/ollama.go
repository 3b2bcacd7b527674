package fakes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OllamaOptions shape the fake Ollama.
type OllamaOptions struct {
	// Parallel is the number of generate and chat requests answered at
	// once, as OLLAMA_NUM_PARALLEL sets it on the real server (0: 1, the
	// server's default). The others wait for a slot.
	Parallel int
	// MaxQueue is the number of requests that may wait for a slot
	// (OLLAMA_MAX_QUEUE, 0: 512); more are refused with 503.
	MaxQueue int
	// TokenDelay is the pause before each streamed chunk, so that a slot
	// stays busy while it answers (0: none).
	TokenDelay time.Duration
	// EmptyAnswers makes every model answer without text, as a model with
	// random weights does: one final chunk, done_reason "stop".
	EmptyAnswers bool
	// NoModels makes a fresh server: /api/tags is empty and every model
	// is unknown.
	NoModels bool
}

// OllamaAPI is the fake Ollama API as an http.Handler, usable with any
// server (NewOllama starts one on loopback).
type OllamaAPI struct {
	// Requests counts generate and chat requests.
	Requests atomic.Int64
	// PeakBusy is the largest number of requests that held a slot at once.
	PeakBusy atomic.Int64

	opts     OllamaOptions
	mux      *http.ServeMux
	tags     []byte
	models   map[string]fakeModel // by lower-case name:tag
	slots    chan struct{}
	waiting  atomic.Int64
	busy     atomic.Int64
	mu       sync.Mutex
	loaded   map[string]time.Time // model → expires_at
	now      func() time.Time
	streams  map[string][][]byte
	showJSON map[string]json.RawMessage
}

type fakeModel struct {
	Name     string
	Size     int64
	Digest   string
	Details  json.RawMessage
	Thinking bool
}

var _ http.Handler = (*OllamaAPI)(nil)

// NewOllamaAPI returns the fake Ollama API.
func NewOllamaAPI(opts OllamaOptions) *OllamaAPI {
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 512
	}
	a := &OllamaAPI{
		opts:   opts,
		mux:    http.NewServeMux(),
		tags:   mustRead("ollama/tags.json"),
		models: map[string]fakeModel{},
		slots:  make(chan struct{}, opts.Parallel),
		loaded: map[string]time.Time{},
		now:    time.Now,
		streams: map[string][][]byte{
			"generate":          lines(mustRead("ollama/generate.ndjson")),
			"chat":              lines(mustRead("ollama/chat.ndjson")),
			"generate-thinking": lines(mustRead("ollama/generate-thinking.ndjson")),
			"chat-thinking":     lines(mustRead("ollama/chat-thinking.ndjson")),
		},
	}
	if err := json.Unmarshal(mustRead("ollama/show.json"), &a.showJSON); err != nil {
		panic(err)
	}
	var tags struct {
		Models []struct {
			Name    string          `json:"name"`
			Size    int64           `json:"size"`
			Digest  string          `json:"digest"`
			Details json.RawMessage `json:"details"`
		} `json:"models"`
	}
	if err := json.Unmarshal(a.tags, &tags); err != nil {
		panic(err)
	}
	if opts.NoModels {
		a.tags, tags.Models = []byte(`{"models":[]}`), nil
	}
	for _, m := range tags.Models {
		var show struct {
			Capabilities []string `json:"capabilities"`
		}
		_ = json.Unmarshal(a.showJSON[m.Name], &show)
		fm := fakeModel{Name: m.Name, Size: m.Size, Digest: m.Digest, Details: m.Details}
		for _, c := range show.Capabilities {
			fm.Thinking = fm.Thinking || c == "thinking"
		}
		a.models[strings.ToLower(m.Name)] = fm
	}
	a.routes()
	return a
}

// ServeHTTP implements http.Handler.
func (a *OllamaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Ollama is a fake Ollama server on loopback.
type Ollama struct {
	*httptest.Server
	*OllamaAPI
}

// NewOllama starts a fake Ollama on loopback with the server's defaults.
// Close it when done.
func NewOllama() *Ollama { return NewOllamaWith(OllamaOptions{}) }

// NewOllamaWith starts a fake Ollama on loopback. Close it when done.
func NewOllamaWith(opts OllamaOptions) *Ollama {
	a := NewOllamaAPI(opts)
	return &Ollama{Server: httptest.NewServer(a), OllamaAPI: a}
}

// normalize is the name:tag form of a model name (see
// apiclient.NormalizeModel; kept here so the fake has no dependency on the
// client it checks).
func normalize(name string) string {
	name = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(name), "registry.ollama.ai/"), "library/")
	if name == "" {
		return ""
	}
	if !strings.Contains(name[strings.LastIndex(name, "/")+1:], ":") {
		name += ":latest"
	}
	return name
}

func (a *OllamaAPI) lookup(name string) (fakeModel, bool) {
	m, ok := a.models[strings.ToLower(normalize(name))]
	return m, ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func errorJSON(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// bind decodes a request body as the server's gin ShouldBindJSON does:
// an empty body is "missing request body", other decoding errors are
// passed on as they read.
func bind(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	switch {
	case errors.Is(err, io.EOF):
		errorJSON(w, http.StatusBadRequest, "missing request body")
		return false
	case err != nil:
		errorJSON(w, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}

// optionTypes are the types of the options the server checks
// (api.Options.FromMap); unknown options are ignored as there.
var optionTypes = map[string]string{
	"num_keep": "integer", "seed": "integer", "num_predict": "integer", "top_k": "integer",
	"repeat_last_n": "integer", "num_ctx": "integer", "num_batch": "integer", "num_gpu": "integer",
	"main_gpu": "integer", "num_thread": "integer",
	"top_p": "float32", "min_p": "float32", "typical_p": "float32", "temperature": "float32",
	"repeat_penalty": "float32", "presence_penalty": "float32", "frequency_penalty": "float32",
	"stop": "array", "use_mmap": "boolean", "numa": "boolean",
}

func checkOptions(opts map[string]any) error {
	for k, v := range opts {
		ok := true
		switch optionTypes[k] {
		case "integer", "float32":
			_, ok = v.(float64)
		case "array":
			_, ok = v.([]any)
		case "boolean":
			_, ok = v.(bool)
		}
		if !ok {
			return fmt.Errorf("option %q must be of type %s", k, optionTypes[k])
		}
	}
	return nil
}

func (a *OllamaAPI) routes() {
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Ollama is running")
	})
	a.mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": "0.17.4"})
	})
	a.mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(a.tags)
	})
	a.mux.HandleFunc("POST /api/show", a.show)
	a.mux.HandleFunc("GET /api/ps", a.ps)
	a.mux.HandleFunc("POST /api/pull", a.pull)
	a.mux.HandleFunc("POST /api/generate", func(w http.ResponseWriter, r *http.Request) { a.complete(w, r, false) })
	a.mux.HandleFunc("POST /api/chat", func(w http.ResponseWriter, r *http.Request) { a.complete(w, r, true) })
}

func (a *OllamaAPI) show(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	if !bind(w, r, &req) {
		return
	}
	if req.Model == "" {
		req.Model = req.Name
	}
	if req.Model == "" {
		errorJSON(w, http.StatusBadRequest, "model is required")
		return
	}
	m, ok := a.lookup(req.Model)
	if !ok {
		errorJSON(w, http.StatusNotFound, fmt.Sprintf("model '%s' not found", normalize(req.Model)))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(a.showJSON[m.Name])
}

func (a *OllamaAPI) ps(w http.ResponseWriter, r *http.Request) {
	type running struct {
		Name      string          `json:"name"`
		Model     string          `json:"model"`
		Size      int64           `json:"size"`
		Digest    string          `json:"digest"`
		Details   json.RawMessage `json:"details"`
		ExpiresAt time.Time       `json:"expires_at"`
		SizeVRAM  int64           `json:"size_vram"`
	}
	out := []running{}
	a.mu.Lock()
	now := a.now()
	for name, exp := range a.loaded {
		if exp.Before(now) {
			delete(a.loaded, name)
			continue
		}
		m := a.models[strings.ToLower(name)]
		out = append(out, running{Name: m.Name, Model: m.Name, Size: m.Size, Digest: m.Digest, Details: m.Details, ExpiresAt: exp, SizeVRAM: m.Size})
	}
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"models": out})
}

// pull answers as a server without network access does: the manifest
// cannot be fetched.
func (a *OllamaAPI) pull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Name   string `json:"name"`
		Stream *bool  `json:"stream"`
	}
	if !bind(w, r, &req) {
		return
	}
	name := normalize(req.Model)
	if name == "" {
		name = normalize(req.Name)
	}
	if name == "" {
		errorJSON(w, http.StatusBadRequest, "invalid model name")
		return
	}
	repo, tag, _ := strings.Cut(name, ":")
	if !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	msg := fmt.Sprintf(`pull model manifest: Get "https://registry.ollama.ai/v2/%s/manifests/%s": dial tcp: lookup registry.ollama.ai: no such host`, repo, tag)
	if req.Stream != nil && !*req.Stream {
		errorJSON(w, http.StatusInternalServerError, msg)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]string{"status": "pulling manifest"})
	_ = enc.Encode(map[string]string{"error": msg})
}

type completionRequest struct {
	Model     string           `json:"model"`
	Prompt    *string          `json:"prompt"`
	Messages  []map[string]any `json:"messages"`
	Stream    *bool            `json:"stream"`
	Think     any              `json:"think"` // true, false or a level ("low", "medium", "high", "max")
	KeepAlive any              `json:"keep_alive"`
	Options   map[string]any   `json:"options"`
}

// complete serves /api/generate and /api/chat in the order the server
// checks a request: body, model name, model, thinking, options, load,
// then a slot for the answer.
func (a *OllamaAPI) complete(w http.ResponseWriter, r *http.Request, chat bool) {
	start := time.Now()
	a.Requests.Add(1)
	var req completionRequest
	if !bind(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Model) == "" {
		if chat {
			errorJSON(w, http.StatusBadRequest, "model is required")
		} else {
			errorJSON(w, http.StatusNotFound, "model '' not found")
		}
		return
	}
	m, ok := a.lookup(req.Model)
	if !ok {
		errorJSON(w, http.StatusNotFound, fmt.Sprintf("model '%s' not found", req.Model))
		return
	}
	empty := (chat && len(req.Messages) == 0) || (!chat && (req.Prompt == nil || *req.Prompt == ""))
	if empty && isZero(req.KeepAlive) {
		a.mu.Lock()
		delete(a.loaded, m.Name)
		a.mu.Unlock()
		a.final(w, req, chat, "unload")
		return
	}
	asked, set := thinkValue(req.Think)
	think := false
	switch {
	case m.Thinking:
		think = !set || asked
	case set && asked:
		errorJSON(w, http.StatusBadRequest, fmt.Sprintf("%q does not support thinking", req.Model))
		return
	}
	if err := checkOptions(req.Options); err != nil {
		errorJSON(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.mu.Lock()
	a.loaded[m.Name] = a.now().Add(5 * time.Minute)
	a.mu.Unlock()
	if empty {
		a.final(w, req, chat, "load")
		return
	}

	if !a.acquire(w, r) {
		return
	}
	defer a.release()

	out := a.answer(m, req, chat, think)
	last := out[len(out)-1]
	last["total_duration"] = time.Since(start).Nanoseconds() + a.opts.TokenDelay.Nanoseconds()*int64(len(out))
	if req.Stream != nil && !*req.Stream {
		writeJSON(w, http.StatusOK, aggregate(out, chat))
		return
	}
	a.stream(w, r, out)
}

// acquire waits for one of OLLAMA_NUM_PARALLEL slots, or answers 503 when
// OLLAMA_MAX_QUEUE requests already wait; false when the request is done.
func (a *OllamaAPI) acquire(w http.ResponseWriter, r *http.Request) bool {
	if a.waiting.Add(1) > int64(a.opts.MaxQueue) {
		a.waiting.Add(-1)
		errorJSON(w, http.StatusServiceUnavailable, "server busy, please try again.  maximum pending requests exceeded")
		return false
	}
	select {
	case a.slots <- struct{}{}:
	case <-r.Context().Done():
		a.waiting.Add(-1)
		return false
	}
	a.waiting.Add(-1)
	busy := a.busy.Add(1)
	for {
		peak := a.PeakBusy.Load()
		if busy <= peak || a.PeakBusy.CompareAndSwap(peak, busy) {
			return true
		}
	}
}

// release frees the slot acquire took.
func (a *OllamaAPI) release() { a.busy.Add(-1); <-a.slots }

// stream writes the answer as NDJSON, TokenDelay before each line.
func (a *OllamaAPI) stream(w http.ResponseWriter, r *http.Request, out []map[string]any) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for _, l := range out {
		if a.opts.TokenDelay > 0 {
			t := time.NewTimer(a.opts.TokenDelay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		l["created_at"] = time.Now().UTC()
		if enc.Encode(l) != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

// thinkValue reads "think": a boolean, or a level, which asks for thinking.
func thinkValue(v any) (asked, set bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		return t != "", true
	}
	return false, false
}

func isZero(keepAlive any) bool {
	switch v := keepAlive.(type) {
	case float64:
		return v == 0
	case string:
		d, err := time.ParseDuration(v)
		return v == "0" || (err == nil && d == 0)
	}
	return false
}

// final answers with the one object of a load or unload.
func (a *OllamaAPI) final(w http.ResponseWriter, req completionRequest, chat bool, reason string) {
	out := map[string]any{"model": req.Model, "created_at": time.Now().UTC(), "done": true, "done_reason": reason}
	if chat {
		out["message"] = map[string]any{"role": "assistant", "content": ""}
	} else {
		out["response"] = ""
	}
	writeJSON(w, http.StatusOK, out)
}

// answer is the recorded stream for the request: the thinking recording
// for a thinking model (its thinking chunks dropped when think is off),
// cut to num_predict tokens.
func (a *OllamaAPI) answer(m fakeModel, req completionRequest, chat, think bool) []map[string]any {
	key := "generate"
	if chat {
		key = "chat"
	}
	if m.Thinking {
		key += "-thinking"
	}
	var chunks []map[string]any
	for _, l := range a.streams[key] {
		var c map[string]any
		if err := json.Unmarshal(l, &c); err != nil {
			panic(err)
		}
		c["model"] = req.Model
		chunks = append(chunks, c)
	}
	last := chunks[len(chunks)-1]
	body := chunks[:len(chunks)-1]
	var keep []map[string]any
	for _, c := range body {
		if !think {
			if chat {
				msg := c["message"].(map[string]any)
				if msg["thinking"] != nil {
					continue
				}
			} else if c["thinking"] != nil {
				continue
			}
		}
		keep = append(keep, c)
	}
	if a.opts.EmptyAnswers {
		keep = nil
		last["eval_count"] = 1.0
	}
	if n, ok := req.Options["num_predict"].(float64); ok && n >= 0 && int(n) < len(keep) {
		keep = keep[:int(n)]
		last["done_reason"] = "length"
		last["eval_count"] = n
	}
	return append(keep, last)
}

// aggregate turns a stream into the single answer of "stream": false: the
// text and thinking joined into the final object.
func aggregate(chunks []map[string]any, chat bool) map[string]any {
	var text, thinking strings.Builder
	for _, c := range chunks {
		src := c
		if chat {
			src, _ = c["message"].(map[string]any)
		}
		s, _ := src["content"].(string)
		if !chat {
			s, _ = src["response"].(string)
		}
		text.WriteString(s)
		t, _ := src["thinking"].(string)
		thinking.WriteString(t)
	}
	last := chunks[len(chunks)-1]
	last["created_at"] = time.Now().UTC()
	if chat {
		msg := map[string]any{"role": "assistant", "content": text.String()}
		if thinking.Len() > 0 {
			msg["thinking"] = thinking.String()
		}
		last["message"] = msg
	} else {
		last["response"] = text.String()
		if thinking.Len() > 0 {
			last["thinking"] = thinking.String()
		}
	}
	return last
}
