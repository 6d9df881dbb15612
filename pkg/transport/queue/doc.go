// Package queue is the durable spool of sendconn serve: the messages it has
// acknowledged and the delivery state of each of their recipients.
//
// The receiving side calls Put and answers 250 to DATA only when Put returns
// nil; a Put error that matches ErrStorage becomes 452 4.3.1. The delivery
// scheduler loads what is stored with Messages, streams bodies with Body,
// records attempts with Update and drops finished messages with Remove.
// One process owns the directory at a time (see Open).
//
// # On-disk layout
//
// A message's files live in one of sixteen subdirectories of the queue
// directory, named by the last hex digit of its id (random), because
// creating and deleting files in a single directory from many sessions at
// once serialises on that directory (directories 0700, files 0600):
//
//	lock                flock(2)ed by the owning process; holds its pid
//	<d>/<id>.msg        the message exactly as received (header and body),
//	                    then its envelope as Put wrote it (JSON, see below),
//	                    then a 16-byte trailer: the envelope's length
//	                    (8 bytes, big-endian) and "sndcnq01"
//	<d>/<id>.msg.tmp    a message being written (Put)
//	<d>/<id>.env        the envelope as the last Update wrote it, which
//	                    replaces the one in <id>.msg
//	<d>/<id>.env.tmp    an envelope being written (Update)
//	corrupt/            messages that Open could not use
//
// One file per message, not two, because creating, syncing and deleting
// files is most of what a message costs the queue (BenchmarkPut: about 40 %
// more Puts per second than with a separate envelope file). Versions before
// kept <id>.body (the message) and <id>.env (the envelope) from the start;
// Open still reads such messages, and Update and Remove keep treating them
// as they were written.
//
// Earlier versions kept every file in the queue directory itself. Open
// moves such messages into place: it hard-links both files, syncs, and
// only then removes the old names, so a crash at any step leaves each
// message whole somewhere, and the next Open finishes the move.
//
// An id is 24 lower-case hex digits: 16 of the arrival time in nanoseconds
// since 1970 (kept strictly increasing within a process and past every id
// already stored) and 8 random ones, so ids sort by arrival, never collide
// with an earlier run's after a clock step, and are safe as file names.
//
// An envelope is one JSON object:
//
//	{"v":1, "id":"…", "from":"a@example.com", "received":"2025-…Z",
//	 "size":1234, "meta":{"client-ip":"…"},
//	 "rcpts":[{"addr":"b@example.org", "status":"pending", "attempts":2,
//	           "next":"2025-…Z", "error":"451 4.4.0 …"}]}
//
// "v" is the format version. Open refuses a directory holding an envelope
// of a newer version rather than guess at it.
//
// # What is a message
//
// A message exists if and only if <id>.msg exists (or, as earlier versions
// wrote it, both <id>.env and <id>.body). Open deletes every *.tmp, every
// body without an envelope and every envelope without a message or body;
// it moves to corrupt/ a message whose trailer or envelope does not parse
// or whose size disagrees with its envelope, and reports it through
// Quarantined, so acknowledged mail is never deleted on a guess.
//
// # Writing
//
// Put streams the message into <id>.msg.tmp through a buffered writer
// (never the whole message in memory), appends the envelope and the
// trailer, fdatasyncs the file, renames it to <id>.msg, and then waits for
// a directory fsync that started after the rename. Only then does it
// return nil and make the message visible to Messages and Get.
//
// Update writes the whole new envelope to <id>.env.tmp, fdatasyncs it,
// renames it over <id>.env and waits for a directory fsync in the same way.
// Remove unlinks <id>.msg, then <id>.env (for an earlier version's
// message: <id>.env, then <id>.body), without waiting for a directory
// fsync: a removal undone by a crash brings the message back, to be
// delivered again (a duplicate, never a loss); Close syncs once.
//
// # Group commit
//
// Directory fsyncs are done by one committer goroutine. An operation that
// needs one sends a waiter and blocks; the committer takes every waiter
// that has arrived (after MaxBatchDelay, when set), syncs the directories
// for all of them — every subdirectory; those without changes cost next to
// nothing, and the file system's one journal commit is shared — and
// answers them all. While that fsync runs,
// newcomers queue up and share the next one, so under load the number of
// directory fsyncs per second is bounded by the disk, not by the number of
// SMTP sessions.
//
// File data is synced with fdatasync(2) of each file by the goroutine that
// wrote it, so concurrent Puts issue their fdatasyncs in parallel and the
// filesystem folds them into shared journal commits (ext4's jbd2 and XFS's
// log both batch concurrent fsyncs). The alternative, one syncfs(2) per
// batch, was measured on ext4 and was no faster; it was rejected because
// it also flushes every other process's dirty data on the same filesystem
// into our 250 latency, and because before Linux 5.8 syncfs does not report
// write-back errors at all, which would let a disk error turn into an
// acknowledged, lost message. fdatasync reports the error of the very file
// it syncs, so a failure fails exactly the Put it belongs to.
//
// # Crash safety
//
// The argument rests on two facts of POSIX filesystems with a journal
// (ext4, XFS): rename(2) within a directory is atomic — after a crash the
// name refers to the old file or the new one, never to a mix — and the
// content of a file that was fdatasynced before the rename is what the new
// name refers to.
//
//   - An acknowledged Put survives: its body and envelope contents were
//     synced before the envelope was renamed into place, and the directory
//     fsync that followed made both names durable before Put returned.
//   - An unacknowledged Put leaves at most a body, a temporary envelope, or
//     (if the crash fell between rename and directory fsync) a complete
//     message that was never acknowledged: Open deletes the first two and
//     keeps the last, which is a possible duplicate, never a loss.
//   - Update is atomic: the new envelope is complete and synced before it
//     replaces the old by rename, so after a crash the envelope is the old
//     one or the new one. Update returns only after the directory fsync, so
//     a returned Update is the state after any later crash.
//   - Remove unlinks the envelope first: a crash in between leaves a body
//     without an envelope, which Open deletes. An envelope whose body is
//     missing can only come from an unacknowledged Put or from a Remove
//     interrupted on a filesystem that reordered the two unlinks; both may
//     be dropped.
//   - A failed write or sync (ErrStorage) unlinks whatever the Put created
//     and never makes the message visible in this process. If the disk
//     refuses even the unlinks, the next Open deletes an incomplete
//     message or, at worst, keeps a whole one the client was told was not
//     stored: a duplicate of its retry, never a loss.
//
// A kill -9 therefore loses nothing acknowledged; at worst a message that
// was stored but not acknowledged is delivered in addition to the
// client's retry (duplicates are possible, loss is not).
package queue
