package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

var trackingKind = &objectKind{
	Name:        "message tracking events",
	DefaultView: []string{"EventId", "Source", "Sender", "Recipients", "MessageSubject"},
	Identity:    func(obj any) string { return obj.(*tracking.Event).InternalMessageID },
	Columns: []column{
		{Name: "Timestamp", Get: func(obj any) any { return obj.(*tracking.Event).Time.UTC().Format(time.RFC3339Nano) }},
		{Name: "EventId", Get: func(obj any) any { return obj.(*tracking.Event).EventID }},
		{Name: "Source", Get: func(obj any) any { return obj.(*tracking.Event).Source }},
		{Name: "Sender", Get: func(obj any) any { return obj.(*tracking.Event).Sender }},
		{Name: "Recipients", Get: func(obj any) any { return obj.(*tracking.Event).Recipients }},
		{Name: "RecipientStatus", Get: func(obj any) any { return obj.(*tracking.Event).RecipientStatus }},
		{Name: "MessageSubject", Get: func(obj any) any { return obj.(*tracking.Event).Subject }},
		{Name: "MessageId", Get: func(obj any) any { return obj.(*tracking.Event).MessageID }},
		{Name: "ConnectorId", Get: func(obj any) any { return obj.(*tracking.Event).ConnectorID }},
		{Name: "TotalBytes", Get: func(obj any) any { return obj.(*tracking.Event).TotalBytes }},
		{Name: "ClientIp", Get: func(obj any) any { return obj.(*tracking.Event).ClientIP }},
		{Name: "ServerHostname", Get: func(obj any) any { return obj.(*tracking.Event).ServerHostname }},
		{Name: "InternalMessageId", Get: func(obj any) any { return obj.(*tracking.Event).InternalMessageID }},
		{Name: "NetworkMessageId", Get: func(obj any) any { return obj.(*tracking.Event).NetworkMessageID }},
		{Name: "RelatedRecipientAddress", Get: func(obj any) any { return obj.(*tracking.Event).RelatedRecipientAddress }},
		{Name: "Reference", Get: func(obj any) any { return obj.(*tracking.Event).Reference }},
	},
}

type trackingGetOptions struct {
	sender, messageID, eventID, start, end string
	recipients                             []string
	resultSize                             int
	out                                    outputOptions
}

func newTrackingCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tracking",
		Short: "Search the message tracking log",
		Long: `Search the message tracking log serve writes under
logs.message-tracking-log-path (MSGTRK<yyyymmdd>-<n>.LOG), as
Get-MessageTrackingLog does. It reads the files directly, so it works while
serve is stopped.`,
	}
	cmd.AddCommand(newTrackingGetCmd(app))
	return cmd
}

func newTrackingGetCmd(app *App) *cobra.Command {
	o := &trackingGetOptions{}
	cmd := &cobra.Command{
		Use:   "get [flags]",
		Short: "Show message tracking events",
		Long: `Show message tracking events, as Get-MessageTrackingLog does: RECEIVE when a
message was accepted, SEND when a next hop took it (ConnectorId names the
Send connector, RecipientStatus holds the remote's reply), DEFER for a
transient failure, FAIL for a permanent one, EXPIRE when it outlived
transport.message-expiration-timeout, DSN when a notification was queued.
Filters combine; times take RFC 3339 ("2026-11-23T18:00:00Z") or a date.`,
		Example: `  sendconn tracking get --recipients bob@fabrikam.com
  sendconn tracking get --sender app@contoso.com --event-id FAIL -o list
  sendconn tracking get --start 2026-11-23 --result-size 50 -o json
  sendconn Get-MessageTrackingLog -Recipients bob@fabrikam.com -EventId SEND`,
		Annotations: map[string]string{cmdletAnnotation: "Get-MessageTrackingLog"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.out.validate(trackingKind); err != nil {
				return err
			}
			f := tracking.Filter{Sender: o.sender, Recipients: o.recipients, MessageID: o.messageID, EventID: o.eventID, ResultSize: o.resultSize}
			var err error
			if f.Start, err = parseWhen("--start", o.start); err != nil {
				return err
			}
			if f.End, err = parseWhen("--end", o.end); err != nil {
				return err
			}
			events, err := tracking.Search(app.cfg.MessageTrackingLogPath, f)
			if err != nil {
				return err
			}
			return app.printObjects(trackingKind, pointersTo(events), o.out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.sender, "sender", "", "the envelope sender")
	annotate(fs.Lookup("sender"), psNameAnnotation, "Sender")
	fs.StringSliceVar(&o.recipients, "recipients", nil, "recipients, comma-separated (any of them)")
	annotate(fs.Lookup("recipients"), psNameAnnotation, "Recipients")
	fs.StringVar(&o.messageID, "message-id", "", "the Message-ID header, with or without <>")
	annotate(fs.Lookup("message-id"), psNameAnnotation, "MessageId")
	fs.StringVar(&o.eventID, "event-id", "", "RECEIVE, SEND, DEFER, FAIL, EXPIRE, DSN or RESUBMIT")
	annotate(fs.Lookup("event-id"), psNameAnnotation, "EventId")
	fs.StringVar(&o.start, "start", "", "events from this time on")
	annotate(fs.Lookup("start"), psNameAnnotation, "Start")
	fs.StringVar(&o.end, "end", "", "events before this time")
	annotate(fs.Lookup("end"), psNameAnnotation, "End")
	fs.IntVar(&o.resultSize, "result-size", tracking.DefaultResultSize, "at most this many events (-1: all)")
	annotate(fs.Lookup("result-size"), psNameAnnotation, "ResultSize")
	addOutputFlags(fs, &o.out)
	return cmd
}

// parseWhen reads RFC 3339, a date-time without zone (UTC), or a date.
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErrorf("%s %q: not a time (use 2026-11-23T18:00:00Z or 2026-11-23)", flag, s)
}
