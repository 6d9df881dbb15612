package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/store"
)

var serverKind = &objectKind{
	Name:        "servers",
	DefaultView: []string{"Name", "Site", "Roles", "Status", "LastHeartbeat", "Address"},
	Identity:    func(obj any) string { return obj.(*store.ServerInfo).Name },
	Columns: []column{
		{Name: "Name", Get: func(obj any) any { return obj.(*store.ServerInfo).Name }},
		{Name: "Fqdn", Get: func(obj any) any { return obj.(*store.ServerInfo).Fqdn }},
		{Name: "Site", Get: func(obj any) any { return obj.(*store.ServerInfo).Site }},
		{Name: "Roles", Get: func(obj any) any { return strings.Join(obj.(*store.ServerInfo).Roles, ",") }},
		{Name: "Status", Get: func(obj any) any { return obj.(*store.ServerInfo).Status.String() }},
		{Name: "LastHeartbeat", Get: func(obj any) any { return connector.FormatTime(obj.(*store.ServerInfo).LastHeartbeat) }},
		{Name: "Address", Get: func(obj any) any { return obj.(*store.ServerInfo).Address }},
		{Name: "Version", Get: func(obj any) any { return obj.(*store.ServerInfo).Version }},
		{Name: "Started", Get: func(obj any) any { return connector.FormatTime(obj.(*store.ServerInfo).Started) }},
	},
}

func newServerCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "List the organization's transport servers",
		Long: `Every 'sendconn serve' registers itself in the store it routes with: its
name, FQDN, site, roles and the address of its organization listener, with
a heartbeat. On a shared store (etcd) this is the list of the organization's
servers, the ones connectors' SourceTransportServers name. See
docs/multi-server.md.`,
		Example: `  sendconn server get
  sendconn Get-TransportService -o json
  sendconn server remove EX03`,
	}
	cmd.AddCommand(newServerGetCmd(app), newServerRemoveCmd(app))
	return cmd
}

type serverGetOptions struct {
	identity string
	out      outputOptions
}

func newServerGetCmd(app *App) *cobra.Command {
	o := &serverGetOptions{}
	cmd := &cobra.Command{
		Use:   "get [NAME...] [flags]",
		Short: "Show the registered transport servers",
		Long: `Show the registered transport servers, as Get-TransportService does, with
their status: Up (heartbeat current), Down (the heartbeat lapsed: the
server crashed or lost the store) or Stopped (it shut down cleanly).`,
		Example: `  sendconn server get
  sendconn server get EX01 -o list
  sendconn Get-TransportService -o json`,
		Annotations: map[string]string{cmdletAnnotation: "Get-TransportService"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServerGet(cmd.Context(), app, o, args)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.identity, "identity", "", "server name or pattern ('-' reads names from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	addOutputFlags(fs, &o.out)
	return cmd
}

func runServerGet(ctx context.Context, app *App, o *serverGetOptions, args []string) error {
	if err := o.out.validate(serverKind); err != nil {
		return err
	}
	ids, _, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil {
		return err
	}
	all, err := app.store().Servers(ctx)
	if err != nil {
		return err
	}
	var found []store.ServerInfo
	var missing []string
	for _, id := range ids {
		n := len(found)
		for _, s := range all {
			if strings.EqualFold(s.Name, id) || isWildcard(id) && wildcardMatch(id, s.Name) {
				found = append(found, s)
			}
		}
		if len(found) == n && !isWildcard(id) {
			missing = append(missing, id)
		}
	}
	if len(ids) == 0 {
		found = all
	}
	if err := app.printObjects(serverKind, pointersTo(found), o.out); err != nil {
		return err
	}
	if len(missing) > 0 {
		return withHint(&store.NotFoundError{Kind: "server", Identity: strings.Join(missing, `", "`)},
			"list servers with 'sendconn server get'")
	}
	return nil
}

func newServerRemoveCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME...",
		Short: "Forget retired transport servers",
		Long: `Remove the registration of servers that will not come back. A server that
is Up is refused: stop it first. Connectors that still name it in
SourceTransportServers are not changed; 'sendconn route' shows what that
means for routing.`,
		Example: `  sendconn server remove EX03`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			b := app.store()
			for _, name := range args {
				if err := b.RemoveServer(ctx, name); err != nil {
					var up *store.ServerUpError
					if errors.As(err, &up) {
						return withHint(err, "stop 'sendconn serve' on "+name+" first")
					}
					return err
				}
			}
			return nil
		},
	}
	return cmd
}
