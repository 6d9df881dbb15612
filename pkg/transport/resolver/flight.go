package resolver

import (
	"context"
	"sync"

	"github.com/miekg/dns"
)

// flight shares one exchange between concurrent lookups of the same name
// and type, so a queue full of mail for one domain asks once when its
// cache entry expires. Unlike x/sync/singleflight it lets each caller
// leave when its own context ends, and cancels the exchange only when the
// last caller has left.
type flight struct {
	mu    sync.Mutex
	calls map[cacheKey]*call
}

type call struct {
	done    chan struct{}
	a       *answer
	err     error
	waiters int
	cancel  context.CancelFunc
}

func (f *flight) do(ctx context.Context, k cacheKey, fn func(context.Context) (*answer, error)) (*answer, error) {
	if err := ctx.Err(); err != nil {
		return nil, f.canceled(k, err)
	}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[cacheKey]*call)
	}
	c, ok := f.calls[k]
	if !ok {
		// The exchange must outlive the caller who started it, should that
		// one give up while others still wait.
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call{done: make(chan struct{}), cancel: cancel}
		f.calls[k] = c
		go func() {
			c.a, c.err = fn(wctx)
			cancel()
			f.mu.Lock()
			if f.calls[k] == c {
				delete(f.calls, k)
			}
			f.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.a, c.err
	case <-ctx.Done():
		f.mu.Lock()
		if c.waiters--; c.waiters == 0 {
			c.cancel()
			if f.calls[k] == c {
				delete(f.calls, k)
			}
		}
		f.mu.Unlock()
		return nil, f.canceled(k, ctx.Err())
	}
}

func (f *flight) canceled(k cacheKey, err error) error {
	return &Error{Kind: Temporary, Name: k.name, Qtype: dns.Type(k.qtype).String(), Err: err}
}
