package fakes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// comfyNode is what the fake knows of a node class: its required inputs
// (name → type, a list for a choice) and whether it is an output node.
type comfyNode struct {
	required map[string]string
	returns  []string
	output   bool
}

// comfyNodes are the core node classes of the recorded workflow.
var comfyNodes = map[string]comfyNode{
	"CheckpointLoaderSimple": {required: map[string]string{"ckpt_name": "choice"}, returns: []string{"MODEL", "CLIP", "VAE"}},
	"CLIPTextEncode":         {required: map[string]string{"text": "STRING", "clip": "CLIP"}, returns: []string{"CONDITIONING"}},
	"EmptyLatentImage":       {required: map[string]string{"width": "INT", "height": "INT", "batch_size": "INT"}, returns: []string{"LATENT"}},
	"KSampler": {required: map[string]string{"model": "MODEL", "seed": "INT", "steps": "INT", "cfg": "FLOAT",
		"sampler_name": "choice", "scheduler": "choice", "positive": "CONDITIONING", "negative": "CONDITIONING",
		"latent_image": "LATENT", "denoise": "FLOAT"}, returns: []string{"LATENT"}},
	"VAEDecode":    {required: map[string]string{"samples": "LATENT", "vae": "VAE"}, returns: []string{"IMAGE"}},
	"SaveImage":    {required: map[string]string{"images": "IMAGE", "filename_prefix": "STRING"}, output: true},
	"PreviewImage": {required: map[string]string{"images": "IMAGE"}, output: true},
}

// onePixelPNG is the image /view serves for a finished prompt's output.
var onePixelPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// ComfyUIAPI is the fake ComfyUI API as an http.Handler: prompts complete
// at once, progress is replayed over the websocket of the client that
// queued them.
type ComfyUIAPI struct {
	// Prompts counts queued prompts.
	Prompts atomic.Int64

	mux     *http.ServeMux
	mu      sync.Mutex
	clients map[string]chan []byte
	done    map[string]bool
	next    atomic.Int64
	history string   // recorded /history answer, PROMPT_ID for the id
	events  [][]byte // recorded websocket progress, PROMPT_ID for the id
}

var _ http.Handler = (*ComfyUIAPI)(nil)

// ServeHTTP implements http.Handler.
func (c *ComfyUIAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// ComfyUI is a fake ComfyUI server on loopback.
type ComfyUI struct {
	*httptest.Server
	*ComfyUIAPI
}

// NewComfyUI starts a fake ComfyUI on loopback. Close it when done.
func NewComfyUI() *ComfyUI {
	a := NewComfyUIAPI()
	return &ComfyUI{Server: httptest.NewServer(a), ComfyUIAPI: a}
}

func comfyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// NewComfyUIAPI returns the fake ComfyUI API.
func NewComfyUIAPI() *ComfyUIAPI {
	c := &ComfyUIAPI{mux: http.NewServeMux(), clients: map[string]chan []byte{}, done: map[string]bool{},
		history: string(mustRead("comfyui/history.json")), events: lines(mustRead("comfyui/ws.ndjson"))}
	stats := mustRead("comfyui/system_stats.json")
	mux := c.mux
	mux.HandleFunc("GET /system_stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(stats)
	})
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, r *http.Request) {
		comfyJSON(w, http.StatusOK, map[string]any{"queue_running": []any{}, "queue_pending": []any{}})
	})
	mux.HandleFunc("GET /ws", c.serveWS)
	mux.HandleFunc("POST /prompt", c.queuePrompt)
	mux.HandleFunc("GET /history/{id}", c.serveHistory)
	mux.HandleFunc("GET /view", c.serveView)
	return c
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveWS is GET /ws: the status message, then the progress of the
// client's prompts.
func (c *ComfyUIAPI) serveWS(w http.ResponseWriter, r *http.Request) {
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
	conn, err := upgrader.Upgrade(w, r, nil)
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
}

// queuePrompt is POST /prompt: validate, complete at once, replay the
// recorded progress to the client's websocket.
func (c *ComfyUIAPI) queuePrompt(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Prompt   map[string]json.RawMessage `json:"prompt"`
		ClientID string                     `json:"client_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "500 Internal Server Error\n\nServer got itself in trouble", http.StatusInternalServerError)
		return
	}
	if req.Prompt == nil {
		comfyJSON(w, http.StatusBadRequest, map[string]any{"error": "no prompt", "node_errors": []any{}})
		return
	}
	if e, nodeErrors := validatePrompt(req.Prompt); e != nil {
		comfyJSON(w, http.StatusBadRequest, map[string]any{"error": e, "node_errors": nodeErrors})
		return
	}
	n := c.Prompts.Add(1)
	id := fmt.Sprintf("6f1c2a4e-0b7d-4e4f-9a51-%012x", n)
	c.mu.Lock()
	c.done[id] = true
	ch := c.clients[req.ClientID]
	c.mu.Unlock()
	if ch != nil {
		for _, e := range c.events {
			ch <- bytes.ReplaceAll(e, []byte("PROMPT_ID"), []byte(id))
		}
	}
	comfyJSON(w, http.StatusOK, map[string]any{"prompt_id": id, "number": n - 1, "node_errors": map[string]any{}})
}

// serveHistory is GET /history/{id}: the recorded entry for a finished prompt.
func (c *ComfyUIAPI) serveHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.mu.Lock()
	ok := c.done[id]
	c.mu.Unlock()
	if !ok {
		_, _ = w.Write([]byte("{}"))
		return
	}
	_, _ = w.Write([]byte(strings.ReplaceAll(c.history, "PROMPT_ID", id)))
}

// serveView is GET /view: the output image of a finished prompt, with
// ComfyUI's answers to bad names, types and subfolders.
func (c *ComfyUIAPI) serveView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("filename")
	if !q.Has("filename") {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if name == "" || name[0] == '/' || strings.Contains(name, "..") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	typ := q.Get("type")
	if typ == "" {
		typ = "output"
	}
	if typ != "output" && typ != "input" && typ != "temp" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if sub := q.Get("subfolder"); strings.HasPrefix(sub, "/") || strings.Contains(sub, "..") {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	c.mu.Lock()
	produced := len(c.done) > 0
	c.mu.Unlock()
	if typ != "output" || q.Get("subfolder") != "" || path.Base(name) != "ComfyUI_00001_.png" || !produced {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Disposition", `filename="ComfyUI_00001_.png"`)
	_, _ = w.Write(onePixelPNG)
}

// validatePrompt checks a workflow as ComfyUI's execution.validate_prompt
// does (as of execution.py f599e5ca, mid-2024, the time of the pinned
// revision): every node has a known class_type, there is an output node,
// and the outputs' required inputs are present and linked to existing
// nodes. It returns the error object and node_errors of a 400 answer
// (node_errors is an empty list for an error of the whole prompt), or nil.
func validatePrompt(prompt map[string]json.RawMessage) (map[string]any, any) {
	type node struct {
		ClassType *string                    `json:"class_type"`
		Inputs    map[string]json.RawMessage `json:"inputs"`
	}
	nodes := map[string]node{}
	var outputs []string
	for id, raw := range prompt {
		var n node
		_ = json.Unmarshal(raw, &n)
		if n.ClassType == nil {
			return errorObj("invalid_prompt", "Cannot execute because a node is missing the class_type property.", fmt.Sprintf("Node ID '#%s'", id)), []any{}
		}
		class, ok := comfyNodes[*n.ClassType]
		if !ok {
			return errorObj("invalid_prompt", fmt.Sprintf("Cannot execute because node %s does not exist.", *n.ClassType), fmt.Sprintf("Node ID '#%s'", id)), []any{}
		}
		if class.output {
			outputs = append(outputs, id)
		}
		nodes[id] = n
	}
	if len(outputs) == 0 {
		return errorObj("prompt_no_outputs", "Prompt has no outputs", ""), []any{}
	}
	nodeErrors := map[string]any{}
	var details []string
	for _, o := range outputs {
		n := nodes[o]
		var reasons []any
		for input := range comfyNodes[*n.ClassType].required {
			raw, ok := n.Inputs[input]
			if !ok {
				reasons = append(reasons, map[string]any{"type": "required_input_missing", "message": "Required input is missing",
					"details": input, "extra_info": map[string]any{"input_name": input}})
				details = append(details, "Required input is missing: "+input)
				continue
			}
			var link []any
			if json.Unmarshal(raw, &link) == nil && len(link) == 2 {
				from, _ := link[0].(string)
				if _, ok := nodes[from]; !ok {
					reasons = append(reasons, map[string]any{"type": "exception_during_inner_validation", "message": "Exception when validating inner node",
						"details": fmt.Sprintf("'%s'", from), "extra_info": map[string]any{"input_name": input}})
					details = append(details, fmt.Sprintf("Exception when validating inner node: '%s'", from))
				}
			}
		}
		if len(reasons) > 0 {
			nodeErrors[o] = map[string]any{"errors": reasons, "dependent_outputs": []any{o}, "class_type": *n.ClassType}
		}
	}
	if len(nodeErrors) == len(outputs) {
		return errorObj("prompt_outputs_failed_validation", "Prompt outputs failed validation", strings.Join(details, "\n")), nodeErrors
	}
	return nil, nil
}

func errorObj(typ, msg, details string) map[string]any {
	return map[string]any{"type": typ, "message": msg, "details": details, "extra_info": map[string]any{}}
}
