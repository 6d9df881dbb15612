package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// suspendedQueues is the set of queues an administrator suspended, kept
// in the queue directory so that a restart does not quietly resume them.
type suspendedQueues struct {
	path string
	mu   sync.Mutex
	set  []string // next-hop names as given, compared case-insensitively
}

const suspendedFile = "suspended-queues.json"

func loadSuspendedQueues(dir string) (*suspendedQueues, error) {
	sq := &suspendedQueues{path: filepath.Join(dir, suspendedFile)}
	b, err := os.ReadFile(sq.path)
	if errors.Is(err, os.ErrNotExist) {
		return sq, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read suspended queues: %w", err)
	}
	if err := json.Unmarshal(b, &sq.set); err != nil {
		return nil, fmt.Errorf("read suspended queues %s: %w", sq.path, err)
	}
	return sq, nil
}

func (sq *suspendedQueues) has(hop string) bool {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	return sq.index(hop) >= 0
}

// canonical returns the stored spelling of hop.
func (sq *suspendedQueues) canonical(hop string) string {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	if i := sq.index(hop); i >= 0 {
		return sq.set[i]
	}
	return hop
}

func (sq *suspendedQueues) index(hop string) int {
	return slices.IndexFunc(sq.set, func(s string) bool { return strings.EqualFold(s, hop) })
}

func (sq *suspendedQueues) add(hop string) error {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	if sq.index(hop) >= 0 {
		return nil
	}
	return sq.save(append(slices.Clone(sq.set), hop))
}

func (sq *suspendedQueues) remove(hop string) error {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	i := sq.index(hop)
	if i < 0 {
		return nil
	}
	return sq.save(slices.Delete(slices.Clone(sq.set), i, i+1))
}

// save writes the new set durably (temporary file, sync, rename, sync of
// the directory) and only then makes it current.
func (sq *suspendedQueues) save(set []string) error {
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	tmp := sq.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save suspended queues: %w", err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save suspended queues: %w", err)
	}
	if err := os.Rename(tmp, sq.path); err != nil {
		return fmt.Errorf("save suspended queues: %w", err)
	}
	if d, err := os.Open(filepath.Dir(sq.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	sq.set = set
	return nil
}
