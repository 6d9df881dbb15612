package organization

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// handshakeTimeout bounds a client's TLS handshake, so one that connects
// and says nothing holds nothing.
const handshakeTimeout = 30 * time.Second

// Listener is the organization listener: it completes each client's
// mutual-TLS handshake in a goroutine of its own, hands SMTP sessions to
// Accept and serves proxy sessions itself when this server is a frontend.
// A client without a certificate from the organization CA gets no further
// than the handshake.
type Listener struct {
	ln     net.Listener
	cfg    *tls.Config
	proxy  *Proxy // nil: not a frontend, proxy sessions are refused
	log    *slog.Logger
	conns  chan net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Listen serves the organization listener on ln.
func Listen(ln net.Listener, t *TLS, proxy *Proxy, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{ln: ln, cfg: t.ServerConfig(), proxy: proxy, log: log, conns: make(chan net.Conn), ctx: ctx, cancel: cancel}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.log.Error("organization listener stopped", "err", err)
			l.cancel()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handshake(raw)
		}()
	}
}

func (l *Listener) handshake(raw net.Conn) {
	c := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Info("organization handshake refused", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	switch c.ConnectionState().NegotiatedProtocol {
	case ProtoProxy:
		if l.proxy == nil {
			l.log.Info("proxy request refused: this server is not a frontend", "peer", PeerName(c.ConnectionState()))
			_, _ = c.Write([]byte("451 this server is not a frontend server\r\n"))
			c.Close()
			return
		}
		l.proxy.serve(l.ctx, c)
	default:
		select {
		case l.conns <- c:
		case <-l.ctx.Done():
			c.Close()
		}
	}
}

// Accept returns the next SMTP session from a server of the organization.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting. Proxy sessions in progress end with their
// connections; it does not wait for them.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.ln.Close()
	})
	return err
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }
