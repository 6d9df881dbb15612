package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/store"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

// App holds a command's dependencies; tests build one with buffers and a
// fake environment and call run in-process.
type App struct {
	IO       *IOStreams
	Getenv   func(string) string
	Now      func() time.Time
	Hostname func() (string, error)
	Euid     int

	configFile string
	cfg        *Config
	// capture, when set, receives what a command would print instead of
	// its printing it: exec runs cmdlets in-process and pipes their
	// objects on.
	capture func(kind *objectKind, objs []any)
	// stores are the stores opened so far, by spec: an etcd store holds a
	// client connection for the whole command line, and exec's --whatif
	// switches to a copy.
	stores map[string]store.Backend
}

// printObjects prints objs as the command's output options say, or hands
// them to capture.
func (app *App) printObjects(kind *objectKind, objs []any, o outputOptions) error {
	if app.capture != nil {
		app.capture(kind, objs)
		return nil
	}
	return printObjects(app.IO.Out, kind, objs, o)
}

func newApp(io *IOStreams, getenv func(string) string) *App {
	return &App{IO: io, Getenv: getenv, Now: time.Now, Hostname: os.Hostname, Euid: os.Geteuid()}
}

// run executes one command line and returns the exit code.
func run(args []string, app *App) int {
	root := newRootCmd(app)
	root.SetArgs(rewriteArgs(root, args))
	err := root.ExecuteContext(context.Background())
	app.closeStores()
	if err != nil {
		printError(app.IO.ErrOut, err)
	}
	return exitCode(err)
}

const noConfigAnnotation = "no-config"

func newRootCmd(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "sendconn",
		Short: "Send connectors for outbound mail, managed like Exchange's",
		Long: `sendconn decides how outbound mail leaves the organization: named Send
connectors say which destination domains go through which smart hosts (or
straight to the recipient's MX), with which TLS and authentication, and
which internal headers may leave.

The commands mirror Exchange's cmdlets and answer to their names too:
  new, set, get, remove              New-, Set-, Get-, Remove-SendConnector
  permission add, remove, get        Add-, Remove-, Get-ADPermission
  accepted-domain new, get, remove   New-, Get-, Remove-AcceptedDomain
  queue get, retry, suspend, resume  Get-, Retry-, Suspend-, Resume-Queue
  message get, remove, ...           Get-, Remove-, Suspend-, Resume-Message
Parameters may be written as flags (--dns-routing-enabled=false) or as in
the Exchange Management Shell (-DNSRoutingEnabled '$false').`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Annotations[noConfigAnnotation] != "" {
				return nil
			}
			return app.loadConfig(cmd)
		},
	}
	root.SetIn(app.IO.In)
	root.SetOut(app.IO.Out)
	root.SetErr(app.IO.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{msg: err.Error(), hint: "see '" + root.Name() + " COMMAND --help'"}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&app.configFile, "config", "", "config file (default /etc/sendconn/sendconn.yaml, then $XDG_CONFIG_HOME/sendconn/sendconn.yaml; env SENDCONN_CONFIG)")
	pf.String("store", "", "store: a file (default /var/lib/sendconn/sendconn.db for root, else $XDG_DATA_HOME/sendconn/sendconn.db) or etcd://host:port[,host:port]/prefix; env SENDCONN_STORE")
	pf.String("store-timeout", "", "how long to wait for a store locked by another sendconn process, or for etcd to answer (default 5s)")
	pf.String("log-level", "", "log level: debug, info, warn, error (default info)")
	pf.String("log-format", "", "log format: text or json (default text)")

	root.AddCommand(
		newNewCmd(app), newSetCmd(app), newGetCmd(app), newRemoveCmd(app),
		newPermissionCmd(app), newAcceptedDomainCmd(app), newServeCmd(app),
		newQueueCmd(app), newMessageCmd(app),
		newRouteCmd(app),
		newTestConnectorCmd(app), newTrackingCmd(app),
		newServerCmd(app), newStoreCmd(app), newHashPasswordCmd(app),
		newExecCmd(app), newExportCmd(app),
		newVersionCmd(app), newGenDocsCmd(app),
	)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			markNoConfig(c)
		}
	}
	installHelp(root)
	return root
}

func markNoConfig(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[noConfigAnnotation] = "true"
	for _, sub := range c.Commands() {
		markNoConfig(sub)
	}
}

func (app *App) configEnv() *configEnv {
	host, err := app.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &configEnv{getenv: app.Getenv, euid: app.Euid, hostname: host}
}

func (app *App) loadConfig(cmd *cobra.Command) error {
	cfg, err := loadConfig(app.configEnv(), cmd.Flags(), app.configFile)
	if err != nil {
		return err
	}
	app.cfg = cfg
	return nil
}

// store is the configured store. A bbolt file is opened per transaction
// and never held; an etcd store keeps its client until the command ends.
// A spec that cannot be opened gives a store whose every operation fails
// with the reason.
func (app *App) store() store.Backend {
	spec := app.cfg.Store
	if b, ok := app.stores[spec]; ok {
		return b
	}
	b, err := openStore(app.cfg, spec, app.Now)
	if err != nil {
		return brokenStore{err}
	}
	if app.stores == nil {
		app.stores = map[string]store.Backend{}
	}
	app.stores[spec] = b
	return b
}

// openStore opens spec with the configuration's store settings.
func openStore(cfg *Config, spec string, now func() time.Time) (store.Backend, error) {
	return store.Open(spec, store.Options{
		LockTimeout:        cfg.StoreTimeout,
		Now:                now,
		OrganizationDomain: cfg.OrganizationDomain,
		Etcd: store.EtcdOptions{
			CAFile: cfg.EtcdCAFile, CertFile: cfg.EtcdCert, KeyFile: cfg.EtcdKey,
			Username: cfg.EtcdUsername, PasswordFile: cfg.EtcdPasswordFile,
		},
	})
}

func (app *App) closeStores() {
	for spec, b := range app.stores {
		_ = b.Close()
		delete(app.stores, spec)
	}
}

// brokenStore is a store spec that could not be opened.
type brokenStore struct{ err error }

func (b brokenStore) View(context.Context, func(store.Tx) error) error   { return b.err }
func (b brokenStore) Update(context.Context, func(store.Tx) error) error { return b.err }
func (b brokenStore) Register(context.Context, store.ServerInfo, time.Duration) (store.Registration, error) {
	return nil, b.err
}
func (b brokenStore) Servers(context.Context) ([]store.ServerInfo, error) { return nil, b.err }
func (b brokenStore) RemoveServer(context.Context, string) error          { return b.err }
func (b brokenStore) Watch(context.Context) <-chan struct{}               { return nil }
func (b brokenStore) String() string                                      { return "(unusable store)" }
func (b brokenStore) Close() error                                        { return nil }

// defaults are what a new connector takes from this server.
func (app *App) defaults() connector.Defaults {
	return connector.Defaults{ServerName: app.cfg.ServerName}
}

func newVersionCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print sendconn's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(app.IO.Out, "sendconn %s\n", version)
			return err
		},
	}
	markNoConfig(c)
	return c
}
