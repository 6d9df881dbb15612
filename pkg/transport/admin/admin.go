// Package admin is serve's administration endpoint: a small JSON-over-HTTP
// API on a Unix socket (mode 0600, so only the account serve runs as and
// root can use it), and the client the queue and message commands use.
//
// HTTP on a Unix socket keeps the protocol inspectable with curl
// (curl --unix-socket /run/sendconn/admin.sock http://sendconn/v1/queues)
// while file permissions, not a password, decide who may use it.
//
//	GET  /v1/status                         the server, its configuration revision
//	GET  /v1/queues[?identity=Q]            Get-Queue
//	POST /v1/queues/retry?identity=Q[&resubmit=true]
//	POST /v1/queues/suspend?identity=Q
//	POST /v1/queues/resume?identity=Q
//	GET  /v1/messages[?queue=Q]             Get-Message
//	POST /v1/messages/remove?identity=M[&ndr=true]
//	POST /v1/messages/suspend?identity=M
//	POST /v1/messages/resume?identity=M
//
// Errors come back as {"error": "...", "kind": "..."} with a status that
// says what kind: 404 not found, 400 invalid, 409 busy.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sendconn/sendconn/pkg/transport"
)

// API is what serve offers administrators; *transport.Server implements it.
type API interface {
	Status() transport.Status
	Queues(identity string) ([]transport.QueueInfo, error)
	Messages(queue string) ([]transport.MessageInfo, error)
	RetryQueue(ctx context.Context, identity string, resubmit bool) (int, error)
	SuspendQueue(identity string) error
	ResumeQueue(ctx context.Context, identity string) error
	SuspendMessage(ctx context.Context, identity string) error
	ResumeMessage(ctx context.Context, identity string) error
	RemoveMessage(ctx context.Context, identity string, withNDR bool) (int, error)
}

// Kinds of error the API reports, so the client can give the right exit
// code.
const (
	KindNotFound = "not-found"
	KindInvalid  = "invalid"
	KindBusy     = "busy"
	KindInternal = "internal"
)

// Error is an API error as the client receives it.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// ErrNotRunning means nothing answers on the socket.
var ErrNotRunning = errors.New("sendconn serve is not running")

// Listen creates the socket at path with mode 0600. The socket is bound
// under a temporary name and renamed into place only once its mode is
// set, so there is no moment at which others could connect. A socket left
// by a serve that died is replaced; one that answers is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another sendconn serve is listening on it", path)
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &socketListener{UnixListener: ul, path: path}, nil
}

// socketListener removes the socket file when closed.
type socketListener struct {
	*net.UnixListener
	path string
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	_ = os.Remove(l.path)
	return err
}

// Serve answers API requests on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, api API, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: Handler(api, log), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Handler is the HTTP face of api.
func Handler(api API, log *slog.Logger) http.Handler {
	h := &handler{api: api, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", h.status)
	mux.HandleFunc("GET /v1/queues", h.queues)
	mux.HandleFunc("GET /v1/messages", h.messages)
	mux.HandleFunc("POST /v1/{kind}/{op}", h.operation)
	return mux
}

type handler struct {
	api API
	log *slog.Logger
}

// opTimeout bounds a whole operation. The server waits for each message
// that is being delivered on its own (30 s at most); an operation on a
// queue of 100,000 messages takes a while, and the client waits as long.
const opTimeout = 15 * time.Minute

func (h *handler) status(w http.ResponseWriter, _ *http.Request) {
	h.reply(w, h.api.Status(), nil)
}

func (h *handler) queues(w http.ResponseWriter, r *http.Request) {
	qs, err := h.api.Queues(r.URL.Query().Get("identity"))
	h.reply(w, qs, err)
}

func (h *handler) messages(w http.ResponseWriter, r *http.Request) {
	ms, err := h.api.Messages(r.URL.Query().Get("queue"))
	h.reply(w, ms, err)
}

// Result is what an operation reports: how many messages or recipients
// it changed.
type Result struct {
	Count int `json:"count"`
}

// operation is one POST endpoint: it acts on the identity in the query.
type operation func(ctx context.Context, api API, id string, q url.Values) (int, error)

var operations = map[string]operation{
	"queues/retry": func(ctx context.Context, api API, id string, q url.Values) (int, error) {
		return api.RetryQueue(ctx, id, q.Get("resubmit") == "true")
	},
	"queues/suspend": func(_ context.Context, api API, id string, _ url.Values) (int, error) {
		return 0, api.SuspendQueue(id)
	},
	"queues/resume": func(ctx context.Context, api API, id string, _ url.Values) (int, error) {
		return 0, api.ResumeQueue(ctx, id)
	},
	"messages/remove": func(ctx context.Context, api API, id string, q url.Values) (int, error) {
		return api.RemoveMessage(ctx, id, q.Get("ndr") == "true")
	},
	"messages/suspend": func(ctx context.Context, api API, id string, _ url.Values) (int, error) {
		return 0, api.SuspendMessage(ctx, id)
	},
	"messages/resume": func(ctx context.Context, api API, id string, _ url.Values) (int, error) {
		return 0, api.ResumeMessage(ctx, id)
	},
}

func (h *handler) operation(w http.ResponseWriter, r *http.Request) {
	op, ok := operations[r.PathValue("kind")+"/"+r.PathValue("op")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	q := r.URL.Query()
	n, err := op(ctx, h.api, q.Get("identity"), q)
	h.reply(w, Result{n}, err)
}

func (h *handler) reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		e := &Error{Kind: KindInternal, Message: err.Error()}
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, transport.ErrNoSuchQueue), errors.Is(err, transport.ErrNoSuchMessage):
			e.Kind, status = KindNotFound, http.StatusNotFound
		case errors.Is(err, transport.ErrOtherServer), errors.Is(err, transport.ErrInvalidOp):
			e.Kind, status = KindInvalid, http.StatusBadRequest
		case errors.Is(err, transport.ErrBusy):
			e.Kind, status = KindBusy, http.StatusConflict
		default:
			h.log.Error("admin request failed", "err", err)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(e)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// Client talks to a running serve.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the socket at path; nothing is dialled
// until a call.
func NewClient(path string) *Client {
	return &Client{path: path, http: &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
		Timeout: opTimeout + time.Minute,
	}}
}

// Status reports the running server's state.
func (c *Client) Status(ctx context.Context) (transport.Status, error) {
	var out transport.Status
	return out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// Queues is Get-Queue.
func (c *Client) Queues(ctx context.Context, identity string) ([]transport.QueueInfo, error) {
	var out []transport.QueueInfo
	return out, c.do(ctx, http.MethodGet, "/v1/queues", map[string]string{"identity": identity}, &out)
}

// Messages is Get-Message.
func (c *Client) Messages(ctx context.Context, queue string) ([]transport.MessageInfo, error) {
	var out []transport.MessageInfo
	return out, c.do(ctx, http.MethodGet, "/v1/messages", map[string]string{"queue": queue}, &out)
}

// QueueOp runs retry, suspend or resume on a queue.
func (c *Client) QueueOp(ctx context.Context, op, identity string, resubmit bool) (int, error) {
	var res Result
	err := c.do(ctx, http.MethodPost, "/v1/queues/"+op, map[string]string{"identity": identity, "resubmit": strconv.FormatBool(resubmit)}, &res)
	return res.Count, err
}

// MessageOp runs remove, suspend or resume on a message.
func (c *Client) MessageOp(ctx context.Context, op, identity string, withNDR bool) (int, error) {
	var res Result
	err := c.do(ctx, http.MethodPost, "/v1/messages/"+op, map[string]string{"identity": identity, "ndr": strconv.FormatBool(withNDR)}, &res)
	return res.Count, err
}

func (c *Client) do(ctx context.Context, method, path string, query map[string]string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://sendconn"+path, nil)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	for k, v := range query {
		if v != "" {
			q.Set(k, v)
		}
	}
	req.URL.RawQuery = q.Encode()
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w (nothing answers on %s)", ErrNotRunning, c.path)
		}
		return fmt.Errorf("admin socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{}
		if json.Unmarshal(body, e) != nil || e.Message == "" {
			return fmt.Errorf("admin socket %s: %s", c.path, resp.Status)
		}
		return e
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin socket %s: bad answer: %w", c.path, err)
	}
	return nil
}
