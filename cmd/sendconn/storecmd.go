package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/store"
)

func newStoreCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Move a configuration between stores",
		Long: `Where the configuration lives: a bbolt file for one server (the default), or
etcd for several servers that share it (docs/multi-server.md).`,
		Example: `  sendconn store migrate --from /var/lib/sendconn/sendconn.db --to etcd://10.0.0.1:2379,10.0.0.2:2379/sendconn`,
	}
	cmd.AddCommand(newStoreMigrateCmd(app))
	return cmd
}

type storeMigrateOptions struct {
	from, to string
}

func newStoreMigrateCmd(app *App) *cobra.Command {
	o := &storeMigrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate --from SPEC --to SPEC",
		Short: "Copy a whole configuration into an empty store",
		Long: `Copy every connector (Guid, timestamps, credential and permissions included)
and every accepted domain from one store to another, so that 'get',
'permission get' and 'accepted-domain get' show the same on both. The
server registry is not copied: servers register again when they start on
the new store.

The target must hold no connector and no accepted domain. The source is
only read. A copy into etcd that is interrupted leaves the target marked
incomplete, and running the same command again finishes it.

A store is a file path, bbolt:///path, or etcd://host:port[,host:port]/prefix
(etcds:// for TLS); the etcd.* settings of the configuration apply to both.`,
		Example: `  sendconn store migrate --from /var/lib/sendconn/sendconn.db --to etcd://127.0.0.1:2379/sendconn
  sendconn store migrate --from etcd://127.0.0.1:2379/sendconn --to /root/backup.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStoreMigrate(cmd.Context(), app, o)
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "the store to copy (default: the configured store)")
	cmd.Flags().StringVar(&o.to, "to", "", "the empty store to copy into (required)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runStoreMigrate(ctx context.Context, app *App, o *storeMigrateOptions) error {
	if o.from == "" {
		o.from = app.cfg.Store
	}
	if o.from == o.to {
		return usageErrorf("--from and --to name the same store")
	}
	from, err := openStore(app.cfg, o.from, app.Now)
	if err != nil {
		return usageErrorf("--from: %v", err)
	}
	defer from.Close()
	to, err := openStore(app.cfg, o.to, app.Now)
	if err != nil {
		return usageErrorf("--to: %v", err)
	}
	defer to.Close()
	stats, err := store.Copy(ctx, from, to)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(app.IO.Out, "copied %d connectors and %d accepted domains from %s to %s\n",
		stats.Connectors, stats.AcceptedDomains, from, to)
	return err
}
