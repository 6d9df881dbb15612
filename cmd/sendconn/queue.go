package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/transport"
	"github.com/sendconn/sendconn/pkg/transport/admin"
)

// The queue and message commands talk to a running serve over its admin
// socket; the queue lives in that process, not in the store.

var queueKind = &objectKind{
	Name:        "queues",
	DefaultView: []string{"Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain"},
	Identity:    func(obj any) string { return obj.(*transport.QueueInfo).Identity },
	Columns: []column{
		{Name: "Identity", Get: func(obj any) any { return obj.(*transport.QueueInfo).Identity }},
		{Name: "DeliveryType", Get: func(obj any) any { return obj.(*transport.QueueInfo).DeliveryType }},
		{Name: "Status", Get: func(obj any) any { return obj.(*transport.QueueInfo).Status }},
		{Name: "MessageCount", Get: func(obj any) any { return obj.(*transport.QueueInfo).MessageCount }},
		{Name: "NextHopDomain", Get: func(obj any) any { return obj.(*transport.QueueInfo).NextHopDomain }},
		{Name: "NextHopConnector", Get: func(obj any) any { return obj.(*transport.QueueInfo).NextHopConnector }},
		{Name: "LastError", Get: func(obj any) any { return obj.(*transport.QueueInfo).LastError }},
		{Name: "RetryCount", Get: func(obj any) any { return obj.(*transport.QueueInfo).RetryCount }},
		{Name: "LastRetryTime", Get: func(obj any) any { return connector.FormatTime(obj.(*transport.QueueInfo).LastRetryTime) }},
		{Name: "NextRetryTime", Get: func(obj any) any { return connector.FormatTime(obj.(*transport.QueueInfo).NextRetryTime) }},
	},
}

var messageKind = &objectKind{
	Name:        "messages",
	DefaultView: []string{"Identity", "FromAddress", "Status", "Queue", "Subject"},
	Identity:    func(obj any) string { return obj.(*transport.MessageInfo).Identity },
	Columns: []column{
		{Name: "Identity", Get: func(obj any) any { return obj.(*transport.MessageInfo).Identity }},
		{Name: "FromAddress", Get: func(obj any) any { return obj.(*transport.MessageInfo).FromAddress }},
		{Name: "Status", Get: func(obj any) any { return obj.(*transport.MessageInfo).Status }},
		{Name: "Queue", Get: func(obj any) any { return obj.(*transport.MessageInfo).Queue }},
		{Name: "Subject", Get: func(obj any) any { return obj.(*transport.MessageInfo).Subject }},
		{Name: "Size", Get: func(obj any) any { return connector.ByteSize(obj.(*transport.MessageInfo).Size) }},
		{Name: "DateReceived", Get: func(obj any) any { return connector.FormatTime(obj.(*transport.MessageInfo).DateReceived) }},
		{Name: "ExpirationTime", Get: func(obj any) any { return connector.FormatTime(obj.(*transport.MessageInfo).ExpirationTime) }},
		{Name: "LastError", Get: func(obj any) any { return obj.(*transport.MessageInfo).LastError }},
		{Name: "RetryCount", Get: func(obj any) any { return obj.(*transport.MessageInfo).RetryCount }},
		{Name: "Recipients", Get: func(obj any) any {
			// Exchange's -IncludeRecipientInfo form: address;status;last error.
			var out []string
			for _, r := range obj.(*transport.MessageInfo).Recipients {
				out = append(out, strings.TrimSuffix(r.Address+";"+r.Status+";"+r.LastError, ";"))
			}
			return out
		}},
		{Name: "QueueId", Get: func(obj any) any { return obj.(*transport.MessageInfo).QueueID }},
	},
}

// adminClient is the client for the configured admin socket.
func (app *App) adminClient() *admin.Client { return admin.NewClient(app.cfg.AdminSocket) }

// adminError turns the admin API's errors into the CLI's exit codes.
func adminError(err error) error {
	var ae *admin.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrNotRunning):
		return withHint(err, "start it with 'sendconn serve', or point --admin-socket (admin.socket) at the socket it listens on")
	case errors.As(err, &ae):
		switch ae.Kind {
		case admin.KindNotFound:
			return &notFoundError{msg: ae.Message}
		case admin.KindInvalid:
			return usageErrorf("%s", ae.Message)
		}
	}
	return err
}

// notFoundError is a queue or message that does not exist (exit 3).
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func addAdminSocketFlag(fs *pflag.FlagSet) {
	fs.String("admin-socket", "", "serve's admin socket (admin.socket; env SENDCONN_ADMIN_SOCKET)")
}

func newQueueCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Show and manage the delivery queues of a running serve",
		Long: `Show and manage the queues of a running 'sendconn serve', as Get-Queue,
Retry-Queue, Suspend-Queue and Resume-Queue do. There is one queue per next
hop: a DNS-routed connector gets one per recipient domain
(DnsConnectorDelivery), a smart-host connector one for its host list
(SmartHostConnectorDelivery); recipients no connector takes wait in
Unreachable. A queue's identity is <server>\<NextHopDomain>; the next hop
alone will do.

These commands talk to serve over its admin socket (admin.socket); without a
running serve they say so and exit 1. See docs/queues.md.`,
		Example: `  sendconn queue get
  sendconn queue get 'EX01\contoso.com' -o list
  sendconn queue retry contoso.com
  sendconn queue retry Unreachable --resubmit
  sendconn Get-Queue`,
	}
	addAdminSocketFlag(cmd.PersistentFlags())
	cmd.AddCommand(newQueueGetCmd(app), newQueueRetryCmd(app),
		newQueueStateCmd(app, "suspend", "Suspend-Queue", "Stop delivering from a queue until it is resumed",
			`Stop delivering from a queue, as Suspend-Queue does: its messages stay
queued, new ones join it, nothing leaves until 'queue resume'. Suspension
survives a restart of serve.`),
		newQueueStateCmd(app, "resume", "Resume-Queue", "Let a suspended queue deliver again",
			`Let a suspended queue deliver again, as Resume-Queue does; its messages are
tried at once.`),
	)
	return cmd
}

type queueGetOptions struct {
	identity string
	out      outputOptions
}

func newQueueGetCmd(app *App) *cobra.Command {
	o := &queueGetOptions{}
	cmd := &cobra.Command{
		Use:   "get [IDENTITY] [flags]",
		Short: "Show the queues",
		Long: `Show the queues that hold messages, as Get-Queue does: Identity, DeliveryType,
Status (Active, Ready, Retry, Suspended), MessageCount and NextHopDomain in
the table; LastError, RetryCount, LastRetryTime and NextRetryTime in the list
view (-o list) and the other formats. A queue in Retry could not deliver and
waits for NextRetryTime; LastError says why.`,
		Example: `  sendconn queue get
  sendconn queue get -o list
  sendconn queue get Unreachable --property Identity,MessageCount,LastError
  sendconn Get-Queue -Identity 'EX01\contoso.com' -o json`,
		Annotations: map[string]string{cmdletAnnotation: "Get-Queue"},
		Args:        cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.identity = args[0]
			}
			if err := o.out.validate(queueKind); err != nil {
				return err
			}
			qs, err := app.adminClient().Queues(cmd.Context(), o.identity)
			if err != nil {
				return adminError(err)
			}
			return app.printObjects(queueKind, pointersTo(qs), o.out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.identity, "identity", "", `queue identity: <server>\<NextHopDomain>, the next hop alone, or Unreachable`)
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	addOutputFlags(fs, &o.out)
	return cmd
}

func newQueueRetryCmd(app *App) *cobra.Command {
	var identity string
	var resubmit bool
	cmd := &cobra.Command{
		Use:   "retry IDENTITY... [--resubmit]",
		Short: "Try a waiting queue now",
		Long: `Try a queue's messages now instead of at their next retry time, as
Retry-Queue does. --resubmit routes them again first, the step after a
connector was created or fixed; the Unreachable queue can only be
resubmitted. (serve routes every attempt with the current connectors, so
both deliver through a new connector at once.) Prints how many messages were
made due.`,
		Example: `  sendconn queue retry contoso.com
  sendconn queue retry Unreachable --resubmit
  sendconn Retry-Queue -Identity 'EX01\Unreachable' -Resubmit '$true'`,
		Annotations: map[string]string{cmdletAnnotation: "Retry-Queue"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachIdentity(app, args, identity, "queue", func(id string) error {
				n, err := app.adminClient().QueueOp(cmd.Context(), "retry", id, resubmit)
				if err == nil {
					fmt.Fprintf(app.IO.ErrOut, "sendconn: note: %s: %d message(s) to try now\n", id, n)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&identity, "identity", "", "queue identity ('-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	fs.BoolVar(&resubmit, "resubmit", false, "route the messages again (required for Unreachable)")
	annotate(fs.Lookup("resubmit"), psNameAnnotation, "Resubmit")
	return cmd
}

func newQueueStateCmd(app *App, op, cmdlet, short, long string) *cobra.Command {
	var identity string
	cmd := &cobra.Command{
		Use:         op + " IDENTITY...",
		Short:       short,
		Long:        long,
		Example:     fmt.Sprintf("  sendconn queue %s contoso.com\n  sendconn %s -Identity 'EX01\\contoso.com'", op, cmdlet),
		Annotations: map[string]string{cmdletAnnotation: cmdlet},
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachIdentity(app, args, identity, "queue", func(id string) error {
				_, err := app.adminClient().QueueOp(cmd.Context(), op, id, false)
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&identity, "identity", "", "queue identity ('-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	return cmd
}

// eachIdentity runs op for every identity given as arguments, with
// --identity, or on standard input ('-'), stopping at the first failure.
func eachIdentity(app *App, args []string, flag, what string, op func(id string) error) error {
	ids, readStdin, err := identityArgs(app.IO.In, args, flag)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		if readStdin {
			return nil // an empty pipe: nothing to do
		}
		return usageErrorf("which %s? give its identity", what)
	}
	for _, id := range ids {
		if err := op(id); err != nil {
			return adminError(err)
		}
	}
	return nil
}

func newMessageCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "message",
		Short: "Show and manage the queued messages of a running serve",
		Long: `Show and manage the messages in a running serve's queues, as Get-Message,
Remove-Message, Suspend-Message and Resume-Message do. A message's identity
is <server>\<queue>\<id>; '<queue>\<id>' or the id alone will do. A message
whose recipients wait in several queues is listed once per queue; an
identity that names the queue acts on the recipients in that queue only.`,
		Example: `  sendconn message get
  sendconn message get --queue contoso.com -o list
  sendconn message remove 'EX01\contoso.com\0187e2d4c5a9b3f100000001' --with-ndr
  sendconn Get-Message -Queue 'EX01\Unreachable'`,
	}
	addAdminSocketFlag(cmd.PersistentFlags())
	cmd.AddCommand(newMessageGetCmd(app), newMessageRemoveCmd(app),
		newMessageStateCmd(app, "suspend", "Suspend-Message", "Hold a message until it is resumed",
			`Hold a message in its queues, as Suspend-Message does: it is not delivered,
and does not expire, until 'message resume'.`),
		newMessageStateCmd(app, "resume", "Resume-Message", "Release a suspended message",
			`Release a suspended message, as Resume-Message does; it is tried at once.`),
	)
	return cmd
}

type messageGetOptions struct {
	queue string
	out   outputOptions
}

func newMessageGetCmd(app *App) *cobra.Command {
	o := &messageGetOptions{}
	cmd := &cobra.Command{
		Use:   "get [flags]",
		Short: "Show queued messages",
		Long: `Show the queued messages, as Get-Message does: Identity, FromAddress, Status,
Queue and Subject in the table; in the list view (-o list) and the other
formats also each recipient with its status and last error (as
-IncludeRecipientInfo shows them), the size, times and retry count.`,
		Example: `  sendconn message get
  sendconn message get --queue Unreachable -o list
  sendconn message get -o name | xargs -n1 sendconn message suspend
  sendconn Get-Message -Queue 'EX01\contoso.com'`,
		Annotations: map[string]string{cmdletAnnotation: "Get-Message"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.out.validate(messageKind); err != nil {
				return err
			}
			ms, err := app.adminClient().Messages(cmd.Context(), o.queue)
			if err != nil {
				return adminError(err)
			}
			return app.printObjects(messageKind, pointersTo(ms), o.out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.queue, "queue", "", "only the messages in this queue")
	annotate(fs.Lookup("queue"), psNameAnnotation, "Queue")
	addOutputFlags(fs, &o.out)
	return cmd
}

func newMessageRemoveCmd(app *App) *cobra.Command {
	var identity string
	var withNDR bool
	cmd := &cobra.Command{
		Use:   "remove IDENTITY... [--with-ndr]",
		Short: "Remove a queued message",
		Long: `Remove a message from the queues, as Remove-Message does. With --with-ndr
its sender gets a non-delivery report (550 4.3.2 QUEUE.Admin; message deleted
by administrative action); without it the message goes silently. Unlike
Exchange, silent is the default, so that a slip cannot send mail. Recipients
already delivered are not affected.`,
		Example: `  sendconn message remove 0187e2d4c5a9b3f100000001
  sendconn message remove 'EX01\contoso.com\0187e2d4c5a9b3f100000001' --with-ndr
  sendconn Remove-Message -Identity 'EX01\Unreachable\0187e2d4c5a9b3f100000001' -WithNDR '$true'`,
		Annotations: map[string]string{cmdletAnnotation: "Remove-Message"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachIdentity(app, args, identity, "message", func(id string) error {
				n, err := app.adminClient().MessageOp(cmd.Context(), "remove", id, withNDR)
				if err == nil {
					fmt.Fprintf(app.IO.ErrOut, "sendconn: note: %s: %d recipient(s) removed\n", id, n)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&identity, "identity", "", "message identity ('-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	fs.BoolVar(&withNDR, "with-ndr", false, "send the sender a non-delivery report")
	annotate(fs.Lookup("with-ndr"), psNameAnnotation, "WithNDR")
	return cmd
}

func newMessageStateCmd(app *App, op, cmdlet, short, long string) *cobra.Command {
	var identity string
	cmd := &cobra.Command{
		Use:         op + " IDENTITY...",
		Short:       short,
		Long:        long,
		Example:     fmt.Sprintf("  sendconn message %s 0187e2d4c5a9b3f100000001\n  sendconn %s -Identity 'EX01\\contoso.com\\0187e2d4c5a9b3f100000001'", op, cmdlet),
		Annotations: map[string]string{cmdletAnnotation: cmdlet},
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachIdentity(app, args, identity, "message", func(id string) error {
				_, err := app.adminClient().MessageOp(cmd.Context(), op, id, false)
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&identity, "identity", "", "message identity ('-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	return cmd
}
