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
// A message is kept in one of two places. Small messages (up to
// Options.LogMaxMessage, 1 MB by default) are appended to the message log,
// shared segment files (see "The message log" below). Larger ones, and
// every message that stays queued after its first delivery attempt, have a
// file of their own in one of sixteen subdirectories of the queue
// directory, named by the last hex digit of its id (random), because
// creating and deleting files in a single directory from many sessions at
// once serialises on that directory (directories 0700, files 0600):
//
//	lock                flock(2)ed by the owning process; holds its pid
//	log/<seq>.log       a segment of the message log (16 hex digits)
//	<d>/<id>.msg        the message exactly as received (header and body),
//	                    then its envelope as Put wrote it (JSON, see below),
//	                    then a 16-byte trailer: the envelope's length
//	                    (8 bytes, big-endian) and "sndcnq01"
//	<d>/<id>.msg.tmp    a message being written (Put)
//	<d>/<id>.env        the envelope as the last Update wrote it, which
//	                    replaces the one in <id>.msg
//	<d>/<id>.env.tmp    an envelope being written (Update)
//	corrupt/            messages that Open could not use (for a logged
//	                    message, <id>.record: its whole log record)
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
// # The message log
//
// A file per message costs a create, a rename, an unlink and a directory
// sync on top of the data, and on ext4 those, not the bytes, were most of
// what a small message cost (about half of the relay's CPU time). So small
// messages share files instead. A segment is a sequence of records:
//
//	"sclg", the record's length (4 bytes), its kind ('P' or 'R'), the
//	id (24 bytes), the envelope's length (4 bytes); for 'P' the message
//	and its envelope (JSON, as above); a CRC-32C of all that (4 bytes)
//
// A 'P' record stores a message; an 'R' record says the message of that
// id is gone. Put reads the message into memory (messages larger than
// LogMaxMessage, or beyond 64 MB of such buffers in all, are streamed to a
// file of their own instead), builds the record and hands it to the log's
// one committer goroutine, which appends every record that has arrived
// meanwhile in one write, fdatasyncs the segment once and only then
// answers: concurrent Puts share one sync, and nothing is acknowledged
// before the sync that covers it. Remove appends an 'R' record without
// waiting for it (it is synced with the next batch). A segment reaching
// Options.SegmentSize is followed by a new one, whose name is synced into
// log/ before any record in it is acknowledged. Segments are written with
// zeros up to 1 MB ahead of their records, so that a sync finds the
// file's size unchanged and only writes the records out, instead of also
// committing the file system's journal; the zeros are synced with the
// batch that wrote them.
//
// Update moves a logged message to a file of its own (written, synced and
// renamed as by Put, and the directory synced), then appends and syncs an
// 'R' record for the logged copy. So the log only holds messages on their
// way through, and a file is always newer than a logged copy of the same
// id. When more than Options.LogSegments segments pile up behind a message
// that stays (one waiting for a delivery slot in a long backlog), the
// messages of the oldest segment are moved to files the same way.
//
// A segment is deleted once it holds no live message and every older
// segment is gone: oldest first, because an 'R' record in a later segment
// must not disappear while the record it cancels still exists. The last
// segment is never deleted while the queue is open; Close deletes them all
// when none holds a message.
//
// Open replays the log an earlier run left: it reads every segment in
// order, keeping the 'P' records no later 'R' record cancels. A record
// whose length or checksum is wrong, or the zeros ahead, end the intact
// part: if intact
// records follow (found by their magic and checksum), the damage is
// reported through Quarantined; a tail that is simply torn, as a crash
// leaves it, is not. Each message still live and not already in a file of
// its own is written to one, the directory synced, and only then are the
// segments deleted; so a running queue's log only ever holds what it put
// there itself, and a crash during Open is replayed again. A record whose
// checksum is right but whose envelope cannot be used is copied to
// corrupt/<id>.record and reported.
//
// # What is a message
//
// A message exists if and only if <id>.msg exists (or, as earlier versions
// wrote it, both <id>.env and <id>.body), or a log record holds it that no
// later 'R' record cancels and no file of its own supersedes. Open deletes every *.tmp, every
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
// For the log:
//
//   - An acknowledged logged Put survives: its record was written and the
//     segment fdatasynced (and the segment's name synced when it was
//     created) before Put returned. Records are only ever appended, so a
//     crash can tear only records that were never acknowledged.
//   - A batch whose write or sync fails is acknowledged to nobody, and the
//     segment takes no more records (they would sit behind a torn one);
//     the next batch starts a new segment, and carries 'R' records for the
//     failed Puts, so that a copy which reached the disk anyway is not
//     delivered after a crash as well as the client's retry.
//   - A logged message moved to its own file by Update exists in both
//     places until the 'R' record is synced; Open prefers the file, and
//     Update waits for that sync before it returns, so the file's message
//     can be removed without the logged copy coming back.
//
// A kill -9 therefore loses nothing acknowledged; at worst a message that
// was stored but not acknowledged is delivered in addition to the
// client's retry (duplicates are possible, loss is not).
package queue
