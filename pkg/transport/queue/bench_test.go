package queue

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkPut stores 10 KB messages one at a time and from many
// goroutines at once (as many SMTP sessions would). The fsyncs dominate;
// the ratio of the two msgs/s figures shows what group commit buys, and
// syncs/msg how many Puts shared each log sync (or, for files, each
// directory fsync). parallel-nosync is the ceiling: the same load with
// every sync skipped, i.e. what the CPU and the file system allow;
// parallel close to it means the syncs are off the critical path.
// parallel-files gives every message a file of its own, as messages
// larger than LogMaxMessage get.
func BenchmarkPut(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 10<<10/18)
	rcpts := []string{"b@example.org"}
	report := func(b *testing.B, q *Queue) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(q.syncs.Load()+q.log.syncs.Load())/float64(b.N), "syncs/msg")
	}
	b.Run("sequential", func(b *testing.B) {
		q := openTest(b, b.TempDir(), Options{}, defaultHooks())
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := q.Put("a@example.com", rcpts, nil, bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, q)
	})
	parallel := func(opts Options, h hooks) func(b *testing.B) {
		return func(b *testing.B) {
			q := openTest(b, b.TempDir(), opts, h)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			// 32 goroutines per CPU: concurrent SMTP sessions wait
			// on the disk, not on a CPU.
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := q.Put("a@example.com", rcpts, nil, bytes.NewReader(body)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			report(b, q)
		}
	}
	b.Run("parallel", parallel(Options{}, defaultHooks()))
	noSync := defaultHooks()
	noSync.syncFile = func(*os.File) error { return nil }
	noSync.syncDir = func(*os.File) error { return nil }
	b.Run("parallel-nosync", parallel(Options{}, noSync))
	b.Run("parallel-files", parallel(Options{LogMaxMessage: filesOnly}, defaultHooks()))
}
