package smtpclient

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// scripted is a loopback SMTP server that follows a script: it reads the
// lines it expects, in order, and only then writes the replies, so a
// client that waited for a reply between pipelined commands would hang.
type step struct {
	read  []string // lines to read (prefix match) before replying
	reply string   // raw reply lines, CRLF-terminated
}

func scripted(t *testing.T, greeting string, steps []step) (*Client, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		if _, err := c.Write([]byte(greeting)); err != nil {
			done <- err
			return
		}
		for _, s := range steps {
			for _, want := range s.read {
				line, err := br.ReadString('\n')
				if err != nil {
					done <- err
					return
				}
				if !strings.HasPrefix(line, want) {
					done <- &Reply{Code: 0, Message: "got " + line + " want " + want}
					return
				}
			}
			if _, err := c.Write([]byte(s.reply)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := NewClient(conn, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("mail.contoso.com", false); err != nil {
		t.Fatal(err)
	}
	return c, done
}

func ehlo(exts ...string) step {
	reply := "250-sink.test\r\n"
	for _, e := range exts {
		reply += "250-" + e + "\r\n"
	}
	return step{read: []string{"EHLO mail.contoso.com"}, reply: reply + "250 SIZE\r\n"}
}

func TestEnvelopeIsPipelinedWhenOffered(t *testing.T) {
	c, done := scripted(t, "220 sink.test\r\n", []step{
		ehlo("PIPELINING"),
		{read: []string{"MAIL FROM:<a@contoso.com> SIZE=10", "RCPT TO:<b@fabrikam.com>", "RCPT TO:<nobody@fabrikam.com>", "DATA"},
			reply: "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n"},
		{read: []string{"Subject: x", "", "body", "."}, reply: "250 2.0.0 queued as 1\r\n"},
	})
	env, err := c.SendEnvelope("a@contoso.com", MailParams{Size: 10}, []RcptParams{{To: "b@fabrikam.com"}, {To: "nobody@fabrikam.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if env.Mail.Code != 250 || len(env.Rcpt) != 2 || env.Rcpt[0].Code != 250 || env.Rcpt[1].Code != 550 || env.Data.Code != 354 {
		t.Fatalf("envelope %+v", env)
	}
	reply, err := c.SendData(strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	if err != nil || reply.Code != 250 {
		t.Fatalf("data: %v %v", reply, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// With every recipient refused, the DATA the client sent ahead is refused
// too, and no message follows.
func TestPipelinedEnvelopeWithoutRecipients(t *testing.T) {
	c, done := scripted(t, "220 sink.test\r\n", []step{
		ehlo("PIPELINING"),
		{read: []string{"MAIL FROM:<a@contoso.com>", "RCPT TO:<nobody@fabrikam.com>", "DATA"},
			reply: "250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n"},
		{read: []string{"RSET"}, reply: "250 ok\r\n"},
	})
	env, err := c.SendEnvelope("a@contoso.com", MailParams{}, []RcptParams{{To: "nobody@fabrikam.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if env.Data != nil || env.Rcpt[0].Code != 550 {
		t.Fatalf("envelope %+v", env)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Without PIPELINING each command waits for its reply, and a refused MAIL
// sends nothing more.
func TestEnvelopeInTurnWithoutPipelining(t *testing.T) {
	c, done := scripted(t, "220 sink.test\r\n", []step{
		ehlo(),
		{read: []string{"MAIL FROM:<a@contoso.com>"}, reply: "250 ok\r\n"},
		{read: []string{"RCPT TO:<b@fabrikam.com>\r"}, reply: "250 ok\r\n"},
		{read: []string{"DATA"}, reply: "354 go ahead\r\n"},
	})
	env, err := c.SendEnvelope("a@contoso.com", MailParams{}, []RcptParams{{To: "b@fabrikam.com", Notify: []string{"NEVER"}}})
	if err != nil || env.Data == nil || env.Data.Code != 354 {
		t.Fatalf("envelope %+v, %v", env, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	c, done = scripted(t, "220 sink.test\r\n", []step{
		ehlo(),
		{read: []string{"MAIL FROM:<a@contoso.com>"}, reply: "452 4.3.1 insufficient storage\r\n"},
	})
	env, err = c.SendEnvelope("a@contoso.com", MailParams{}, []RcptParams{{To: "b@fabrikam.com"}})
	if err != nil || env.Mail.Code != 452 || env.Rcpt != nil || env.Data != nil {
		t.Fatalf("envelope %+v, %v", env, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
