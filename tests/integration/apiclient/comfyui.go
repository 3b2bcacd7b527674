package apiclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"
)

// ComfyUI is a client of the ComfyUI server API.
type ComfyUI struct {
	BaseURL string
	HTTP    *http.Client
}

// NewComfyUI returns a client for a COMFYUI_URL value ("" for the default).
func NewComfyUI(base string) *ComfyUI {
	base = strings.TrimRight(strings.TrimSpace(base), "/")
	if base == "" {
		base = DefaultComfyUI
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &ComfyUI{BaseURL: base, HTTP: &http.Client{}}
}

// SystemStats is GET /system_stats.
type SystemStats struct {
	System struct {
		OS             string   `json:"os"`
		RAMTotal       int64    `json:"ram_total"`
		RAMFree        int64    `json:"ram_free"`
		ComfyUIVersion string   `json:"comfyui_version"`
		PythonVersion  string   `json:"python_version"`
		PyTorchVersion string   `json:"pytorch_version"`
		Argv           []string `json:"argv"`
	} `json:"system"`
	Devices []Device `json:"devices"`
}

// Device is a compute device ComfyUI sees.
type Device struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Index     int    `json:"index"`
	VRAMTotal int64  `json:"vram_total"`
	VRAMFree  int64  `json:"vram_free"`
}

func (c *ComfyUI) getJSON(ctx context.Context, path string, v any) error {
	return doJSON(ctx, c.HTTP, http.MethodGet, c.BaseURL, path, nil, v)
}

// SystemStats reads GET /system_stats.
func (c *ComfyUI) SystemStats(ctx context.Context) (SystemStats, error) {
	var s SystemStats
	return s, c.getJSON(ctx, "/system_stats", &s)
}

// Queued is the answer of POST /prompt.
type Queued struct {
	PromptID   string         `json:"prompt_id"`
	Number     int            `json:"number"`
	NodeErrors map[string]any `json:"node_errors"`
}

// QueuePrompt posts an API-format workflow to /prompt on behalf of clientID
// (the websocket client that receives its progress).
func (c *ComfyUI) QueuePrompt(ctx context.Context, workflow json.RawMessage, clientID string) (Queued, error) {
	body, err := json.Marshal(map[string]any{"prompt": workflow, "client_id": clientID})
	if err != nil {
		return Queued{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/prompt", bytes.NewReader(body))
	if err != nil {
		return Queued{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Queued{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Queued{}, apiError(resp)
	}
	var q Queued
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		return q, fmt.Errorf("/prompt: %w", err)
	}
	return q, nil
}

// Image is an output image reference.
type Image struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// HistoryEntry is one prompt's entry of GET /history/<id>.
type HistoryEntry struct {
	Outputs map[string]struct {
		Images []Image `json:"images"`
	} `json:"outputs"`
	Status struct {
		StatusStr string `json:"status_str"`
		Completed bool   `json:"completed"`
	} `json:"status"`
}

// Images lists every output image of the entry.
func (h HistoryEntry) Images() []Image {
	var out []Image
	for _, o := range h.Outputs {
		out = append(out, o.Images...)
	}
	return out
}

// History reads GET /history/<id>; ok is false while the prompt is not done.
func (c *ComfyUI) History(ctx context.Context, promptID string) (HistoryEntry, bool, error) {
	var m map[string]HistoryEntry
	if err := c.getJSON(ctx, "/history/"+url.PathEscape(promptID), &m); err != nil {
		return HistoryEntry{}, false, err
	}
	h, ok := m[promptID]
	return h, ok, nil
}

// Event is one JSON message of the ComfyUI websocket.
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Progress is the data of a "progress" event.
type Progress struct {
	Value    int    `json:"value"`
	Max      int    `json:"max"`
	PromptID string `json:"prompt_id"`
	Node     string `json:"node"`
}

// Watcher is a websocket connection that receives the progress of the
// prompts queued with its ClientID.
type Watcher struct {
	ClientID string
	// QueueRemaining is the queue length of the greeting status message.
	QueueRemaining int
	conn           *websocket.Conn
}

// NewClientID returns a random client id.
func NewClientID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Watch opens the websocket /ws?clientId=<id> and reads its greeting.
func (c *ComfyUI) Watch(ctx context.Context, clientID string) (*Watcher, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws"
	u.RawQuery = url.Values{"clientId": {clientID}}.Encode()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", u.Redacted(), err)
	}
	w := &Watcher{ClientID: clientID, conn: conn}
	// ComfyUI greets a new socket with the queue status once it has
	// registered it; prompts queued before that would not report here.
	first, err := w.Next(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket %s: %w", u.Redacted(), err)
	}
	if first.Type != "status" {
		conn.Close()
		return nil, fmt.Errorf("websocket %s: expected a status greeting, got %q", u.Redacted(), first.Type)
	}
	var st struct {
		Status struct {
			ExecInfo struct {
				QueueRemaining int `json:"queue_remaining"`
			} `json:"exec_info"`
		} `json:"status"`
		SID string `json:"sid"`
	}
	_ = json.Unmarshal(first.Data, &st)
	w.QueueRemaining = st.Status.ExecInfo.QueueRemaining
	if st.SID != "" {
		w.ClientID = st.SID
	}
	return w, nil
}

// Close closes the websocket.
func (w *Watcher) Close() error { return w.conn.Close() }

// Next reads the next JSON event (binary preview frames are skipped).
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	stop := context.AfterFunc(ctx, func() { _ = w.conn.Close() })
	defer stop()
	for {
		typ, data, err := w.conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			return Event{}, err
		}
		if typ != websocket.TextMessage {
			continue
		}
		var e Event
		if err := json.Unmarshal(data, &e); err != nil {
			return Event{}, fmt.Errorf("websocket message: %w", err)
		}
		return e, nil
	}
}

// Wait reads events until promptID finishes: execution_success, or
// "executing" with a null node. onProgress (may be nil) sees each progress
// event of the prompt. An execution_error fails.
func (w *Watcher) Wait(ctx context.Context, promptID string, onProgress func(Progress)) error {
	return w.Follow(ctx, promptID, func(e Event) {
		if e.Type == "progress" && onProgress != nil {
			var p Progress
			_ = json.Unmarshal(e.Data, &p)
			onProgress(p)
		}
	})
}

// Follow reads events until promptID finishes (as Wait) and hands each
// event of the prompt to fn. Events without a prompt_id (progress of
// older servers) belong to the prompt being followed.
func (w *Watcher) Follow(ctx context.Context, promptID string, fn func(Event)) error {
	for {
		e, err := w.Next(ctx)
		if err != nil {
			return err
		}
		var d struct {
			PromptID *string `json:"prompt_id"`
			Node     *string `json:"node"`
			Message  string  `json:"exception_message"`
		}
		_ = json.Unmarshal(e.Data, &d)
		if e.Type == "status" || (d.PromptID != nil && *d.PromptID != promptID) {
			continue
		}
		if fn != nil {
			fn(e)
		}
		switch e.Type {
		case "execution_error":
			return fmt.Errorf("prompt %s failed: %s", promptID, d.Message)
		case "execution_interrupted":
			return fmt.Errorf("prompt %s was interrupted", promptID)
		case "execution_success":
			return nil
		case "executing":
			if d.Node == nil {
				return nil
			}
		}
	}
}

// Queue is the answer of GET /queue: the running and pending prompts.
type Queue struct {
	Running []json.RawMessage `json:"queue_running"`
	Pending []json.RawMessage `json:"queue_pending"`
}

// Queue reads GET /queue.
func (c *ComfyUI) Queue(ctx context.Context) (Queue, error) {
	var q Queue
	return q, c.getJSON(ctx, "/queue", &q)
}

// View fetches an output image (GET /view) and returns its bytes and
// content type.
func (c *ComfyUI) View(ctx context.Context, img Image) ([]byte, string, error) {
	q := url.Values{"filename": {img.Filename}, "type": {img.Type}, "subfolder": {img.Subfolder}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/view?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", apiError(resp)
	}
	data, err := io.ReadAll(resp.Body)
	return data, resp.Header.Get("Content-Type"), err
}
