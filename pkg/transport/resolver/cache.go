package resolver

import (
	"sync"
	"time"
)

type cacheKey struct {
	name  string // canonical: lower case, fully qualified
	qtype uint16
}

type cacheEntry struct {
	a       *answer
	expires time.Time
}

// cache holds answers until their TTL runs out. When full it evicts, from
// a small random sample, the entry that expires first: nearly what a
// heap would pick, at constant cost and with no bookkeeping per hit.
// A nil *cache caches nothing.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[cacheKey]cacheEntry
}

const evictionSample = 8

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[cacheKey]cacheEntry)}
}

// get returns the answer for k if it has not expired at now, with its TTL
// set to the seconds left, so that an answer built on it expires no later.
func (c *cache) get(k cacheKey, now time.Time) (*answer, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, k)
		return nil, false
	}
	a := *e.a
	a.ttl = uint32(e.expires.Sub(now) / time.Second)
	return &a, true
}

// put stores a for its TTL from now; a TTL of 0 is not stored.
func (c *cache) put(k cacheKey, a *answer, now time.Time) {
	if c == nil || a.ttl == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = cacheEntry{a: a, expires: now.Add(time.Duration(a.ttl) * time.Second)}
}

func (c *cache) evict(now time.Time) {
	var (
		victim cacheKey
		first  time.Time
		n      int
	)
	// Map iteration starts at a random place, which makes this a sample.
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k) // room made, and nothing of value lost
			return
		}
		if n == 0 || e.expires.Before(first) {
			victim, first = k, e.expires
		}
		if n++; n >= evictionSample {
			break
		}
	}
	if !first.IsZero() {
		delete(c.entries, victim)
	}
}
