package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/store"
	"github.com/sendconn/sendconn/pkg/transport"
	"github.com/sendconn/sendconn/pkg/transport/admin"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
	"github.com/sendconn/sendconn/pkg/transport/logfile"
	"github.com/sendconn/sendconn/pkg/transport/protocollog"
	"github.com/sendconn/sendconn/pkg/transport/receive"
	"github.com/sendconn/sendconn/pkg/transport/resolver"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

type serveOptions struct {
	readyFile string
}

func newServeCmd(app *App) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the transport: receive, queue and deliver mail through the Send connectors",
		Long: `Run the transport. It accepts mail from internal senders on receive.listen
(default 127.0.0.1:2525; relaying only for receive.remote-ip-ranges or
authenticated receive.users), answers 250 only once a message is safely on
disk in queue.dir, routes each recipient to a Send connector, and delivers
through the connector's smart hosts (or the recipient domain's MX) with the
connector's TLS and authentication, stripping the headers the connector's
permissions do not let through. MX lookups ask dns.internal-servers (default:
/etc/resolv.conf). Mail that cannot be delivered goes back to its sender as a
non-delivery report; mail that waits transport.delay-notification-timeout gets
one delay notice.

The queue and message commands (Get-Queue, Get-Message, ...) talk to it over
admin.socket, a Unix socket only its own user can use.

serve registers itself in the store's server registry ('sendconn server
get'). With several servers on one etcd store and organization.listen set,
it relays mail for connectors it is not a source server of to one that is,
accepts such mail from the other servers over mutual TLS, and serves as a
frontend for FrontendProxyEnabled connectors (docs/multi-server.md).

Changes made with new, set, remove and permission reach the running
transport within 2 seconds (at once with etcd, which is watched). SIGHUP re-reads the store at once, and the
configuration file's log level and retry schedule. SIGTERM (or
Ctrl-C) stops accepting, lets deliveries in flight finish within
transport.shutdown-timeout and exits 0; the queue is picked up by the next
start. See docs/operations.md, docs/queues.md and docs/ndr.md.`,
		Example: `  sendconn serve
  sendconn serve --config /etc/sendconn/sendconn.yaml --log-format json
  SENDCONN_RECEIVE_LISTEN=127.0.0.1:2526 sendconn serve --ready-file /run/sendconn/ready`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), app, cmd, o)
		},
	}
	cmd.Flags().StringVar(&o.readyFile, "ready-file", "", "write the listening address to FILE once mail is accepted (for scripts and tests)")
	return cmd
}

func runServe(ctx context.Context, app *App, cmd *cobra.Command, o *serveOptions) error {
	cfg := app.cfg
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	logger := newLogger(app, cfg, level)
	opts, err := transportOptions(cfg, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	var reg *prometheus.Registry
	if cfg.AdminMetricsListen != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		opts.Metrics = reg
	}
	if opts.Tracking, err = tracking.Open(logfile.Config{
		Dir: cfg.MessageTrackingLogPath, Version: version,
		MaxFileSize: int64(cfg.MessageTrackingLogMaxFileSize), MaxDirectorySize: int64(cfg.MessageTrackingLogMaxDirSize),
		MaxAge: cfg.MessageTrackingLogMaxAge,
	}); err != nil {
		return fmt.Errorf("logs.message-tracking-log-path: %w", err)
	}
	defer opts.Tracking.Close()
	if opts.Delivery.ProtocolLog, err = protocollog.Open(logfile.Config{
		Dir: cfg.SendProtocolLogPath, Version: version,
		MaxFileSize: int64(cfg.SendProtocolLogMaxFileSize), MaxDirectorySize: int64(cfg.SendProtocolLogMaxDirectorySize),
		MaxAge: cfg.SendProtocolLogMaxAge,
	}); err != nil {
		return fmt.Errorf("logs.send-protocol-log-path: %w", err)
	}
	defer opts.Delivery.ProtocolLog.Close()
	backend := app.store()
	src := storeSource{s: backend, orgDomain: cfg.OrganizationDomain}
	if _, err := src.Revision(ctx); err != nil {
		return fmt.Errorf("read the store %s: %w", backend, err)
	}
	runCtx, leaveOrg := context.WithCancel(ctx)
	defer leaveOrg()
	m, org, err := prepareOrganization(runCtx, cfg, backend, opts.ServerFQDN, logger)
	if err != nil {
		return err
	}
	defer m.leave(logger)
	opts.Organization = org
	srv, err := transport.New(ctx, opts, src)
	if err != nil {
		return err
	}
	if err := m.register(runCtx, backend, logger); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ReceiveListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ReceiveListen, err)
	}
	// The admin socket and the metrics are up before the ready file says
	// so, so a script that waited for it can use them at once.
	if cfg.AdminSocket != "" {
		aln, err := admin.Listen(cfg.AdminSocket)
		if err != nil {
			ln.Close()
			return err
		}
		actx, stopAdmin := context.WithCancel(context.Background())
		defer stopAdmin()
		go func() {
			if err := admin.Serve(actx, aln, srv, logger); err != nil {
				logger.Error("admin socket stopped", "err", err)
			}
		}()
	}
	if reg != nil {
		mln, err := listenMetrics(cfg.AdminMetricsListen, logger)
		if err != nil {
			ln.Close()
			return err
		}
		msrv := &http.Server{Handler: metricsHandler(reg, cfg.AdminPprof), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		logger.Info("metrics", "listen", mln.Addr().String())
	}
	if o.readyFile != "" {
		tmp := o.readyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
		if err := os.Rename(tmp, o.readyFile); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			logger.Info("SIGHUP: reading the configuration file and the store")
			reloadConfig(app, cmd, cfg, srv, level, logger)
			srv.Reload(ctx)
		}
	}()
	return srv.Run(ctx, ln)
}

// reloadConfig applies what a running serve can change: the log level and
// the retry schedule. Anything else that changed is named in the log as
// needing a restart; a file that no longer loads changes nothing.
func reloadConfig(app *App, cmd *cobra.Command, running *Config, srv *transport.Server, level *slog.LevelVar, logger *slog.Logger) {
	next, err := loadConfig(app.configEnv(), cmd.Flags(), app.configFile)
	if err != nil {
		logger.Error("configuration not reloaded", "err", err)
		return
	}
	_ = level.UnmarshalText([]byte(next.LogLevel))
	srv.SetRetry(transport.Retry{
		TransientFailureRetryCount:             next.TransientFailureRetryCount,
		TransientFailureRetryInterval:          next.TransientFailureRetryInterval,
		MessageRetryInterval:                   next.MessageRetryInterval,
		OutboundConnectionFailureRetryInterval: next.OutboundConnectionFailureRetryInterval,
		MessageExpirationTimeout:               next.MessageExpirationTimeout,
		DelayNotificationTimeout:               next.DelayNotificationTimeout,
	})
	var restart []string
	for key, changed := range map[string]bool{
		"receive.*": fmt.Sprint(next.ReceiveListen, next.ReceiveRemoteIPRanges, next.ReceiveUsers, next.ReceiveTLSCert, next.ReceiveTLSKey, next.ReceiveMaxMessageSize, next.ReceiveMaxRecipients, next.ReceiveMaxConnections) != fmt.Sprint(running.ReceiveListen, running.ReceiveRemoteIPRanges, running.ReceiveUsers, running.ReceiveTLSCert, running.ReceiveTLSKey, running.ReceiveMaxMessageSize, running.ReceiveMaxRecipients, running.ReceiveMaxConnections),
		"queue.dir": next.QueueDir != running.QueueDir,
		"store":     next.Store != running.Store,
		"tls.*":     fmt.Sprint(next.TLSCAFile, next.TLSCertificates) != fmt.Sprint(running.TLSCAFile, running.TLSCertificates),
		"server.*":  fmt.Sprint(next.ServerName, next.ServerFQDN, next.ServerSite, next.ServerRoles) != fmt.Sprint(running.ServerName, running.ServerFQDN, running.ServerSite, running.ServerRoles),
		"organization.*": fmt.Sprint(next.OrganizationDomain, next.OrganizationListen, next.OrganizationAddress, next.OrganizationCAFile, next.OrganizationCert, next.OrganizationKey) !=
			fmt.Sprint(running.OrganizationDomain, running.OrganizationListen, running.OrganizationAddress, running.OrganizationCAFile, running.OrganizationCert, running.OrganizationKey),
		"etcd.*":        fmt.Sprint(next.EtcdCAFile, next.EtcdCert, next.EtcdKey, next.EtcdUsername, next.EtcdPasswordFile) != fmt.Sprint(running.EtcdCAFile, running.EtcdCert, running.EtcdKey, running.EtcdUsername, running.EtcdPasswordFile),
		"admin.socket":  next.AdminSocket != running.AdminSocket,
		"dns.*":         fmt.Sprint(next.DNSInternalServers, next.DNSExternalServers) != fmt.Sprint(running.DNSInternalServers, running.DNSExternalServers),
		"transport.max": next.MaxOutboundConnections != running.MaxOutboundConnections || next.MaxPerDomainOutboundConnections != running.MaxPerDomainOutboundConnections,
	} {
		if changed {
			restart = append(restart, key)
		}
	}
	logger.Info("configuration file reloaded", "file", next.File, "log_level", next.LogLevel)
	if len(restart) > 0 {
		sort.Strings(restart)
		logger.Warn("changed settings take effect after a restart", "keys", strings.Join(restart, ","))
	}
}

func newLogger(app *App, cfg *Config, level *slog.LevelVar) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(app.IO.ErrOut, hopts))
	}
	return slog.New(slog.NewTextHandler(app.IO.ErrOut, hopts))
}

// transportOptions turns the configuration into the transport's options,
// loading certificates now so that a bad file stops serve at start.
func transportOptions(cfg *Config, logger *slog.Logger) (transport.Options, error) {
	fqdn := cfg.ServerFQDN
	if fqdn == "" {
		fqdn = cfg.ServerName
	}
	var users []receive.User
	for _, u := range cfg.ReceiveUsers {
		users = append(users, receive.User{Name: u.Name, PasswordHash: u.PasswordHash})
	}
	rc := receive.Config{
		Hostname:          fqdn,
		RemoteIPRanges:    cfg.ReceiveRemoteIPRanges,
		Users:             users,
		AllowInsecureAuth: cfg.ReceiveAllowInsecureAuth,
		MaxMessageSize:    int64(cfg.ReceiveMaxMessageSize),
		MaxRecipients:     cfg.ReceiveMaxRecipients,
		MaxConnections:    cfg.ReceiveMaxConnections,
		CommandTimeout:    cfg.ReceiveCommandTimeout,
		DataTimeout:       cfg.ReceiveDataTimeout,
	}
	if cfg.ReceiveTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ReceiveTLSCert, cfg.ReceiveTLSKey)
		if err != nil {
			return transport.Options{}, fmt.Errorf("receive.tls: %w", err)
		}
		rc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	dc := delivery.Config{ServerFQDN: fqdn}
	var err error
	if dc.Resolver, err = dnsResolver("dns.internal-servers", cfg.DNSInternalServers); err != nil {
		return transport.Options{}, err
	}
	if dc.ExternalResolver, err = dnsResolver("dns.external-servers", cfg.DNSExternalServers); err != nil {
		return transport.Options{}, err
	}
	if dc.Resolver == nil {
		if _, err := resolver.ServersFromResolvConf("/etc/resolv.conf"); err != nil {
			logger.Warn("dns.internal-servers is not set and /etc/resolv.conf names no usable server: MX routing and smart host names will not resolve", "err", err)
		}
	}
	if dc.Self, err = selfAddresses(cfg.ReceiveListen); err != nil {
		return transport.Options{}, err
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return transport.Options{}, fmt.Errorf("tls.ca-file: %w", err)
		}
		dc.RootCAs = x509.NewCertPool()
		if !dc.RootCAs.AppendCertsFromPEM(pem) {
			return transport.Options{}, fmt.Errorf("tls.ca-file %s: no PEM certificates in it", cfg.TLSCAFile)
		}
	}
	for _, c := range cfg.TLSCertificates {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return transport.Options{}, fmt.Errorf("tls.certificates %s: %w", filepath.Base(c.Cert), err)
		}
		dc.Certificates = append(dc.Certificates, cert)
	}
	return transport.Options{
		ServerName: cfg.ServerName,
		ServerSite: cfg.ServerSite,
		ServerFQDN: fqdn,
		QueueDir:   cfg.QueueDir,
		Receive:    rc,
		Delivery:   dc,
		Retry: transport.Retry{
			TransientFailureRetryCount:             cfg.TransientFailureRetryCount,
			TransientFailureRetryInterval:          cfg.TransientFailureRetryInterval,
			MessageRetryInterval:                   cfg.MessageRetryInterval,
			OutboundConnectionFailureRetryInterval: cfg.OutboundConnectionFailureRetryInterval,
			MessageExpirationTimeout:               cfg.MessageExpirationTimeout,
			DelayNotificationTimeout:               cfg.DelayNotificationTimeout,
		},
		MaxOutboundConnections:     cfg.MaxOutboundConnections,
		MaxPerConnectorConnections: cfg.MaxPerDomainOutboundConnections,
		ShutdownTimeout:            cfg.ShutdownTimeout,
		Logger:                     logger,
	}, nil
}

// storeSource is the transport's view of the store: one read transaction
// per check, nothing held open.
type storeSource struct {
	s         store.Store
	orgDomain string
}

// Changes follows the store's watch (etcd); nil for a bbolt file, which
// the transport polls.
func (ss storeSource) Changes(ctx context.Context) <-chan struct{} {
	if b, ok := ss.s.(store.Backend); ok {
		return b.Watch(ctx)
	}
	return nil
}

func (ss storeSource) Revision(ctx context.Context) (uint64, error) {
	var rev uint64
	err := ss.s.View(ctx, func(tx store.Tx) error { rev = tx.Revision(); return nil })
	return rev, err
}

func (ss storeSource) Snapshot(ctx context.Context) (*transport.Snapshot, error) {
	snap := &transport.Snapshot{ACLs: map[string]permissions.ACL{}}
	err := ss.s.View(ctx, func(tx store.Tx) error {
		snap.Revision = tx.Revision()
		var err error
		if snap.Connectors, err = tx.Connectors(); err != nil {
			return err
		}
		for _, c := range snap.Connectors {
			if snap.ACLs[c.Guid], err = tx.ACL(c.Guid); err != nil {
				return err
			}
		}
		snap.Domains, err = tx.AcceptedDomains()
		return err
	})
	return snap, err
}

// dnsResolver builds the resolver for a dns.* key from the servers it
// lists. With none listed it returns nil: the deliverer then asks the
// servers of /etc/resolv.conf, or, if that names none, fails every lookup
// transiently with the reason, so that smart hosts given as IP addresses
// still work on a machine without DNS.
func dnsResolver(key string, servers []string) (delivery.Resolver, error) {
	if len(servers) == 0 {
		return nil, nil
	}
	r, err := resolver.New(resolver.Config{Servers: servers})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return r, nil
}

// selfAddresses are the addresses this server receives mail on, for
// recognising an MX that points back here: the listen address, or every
// local address when it listens on all of them.
func selfAddresses(listen string) ([]netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		host, port, serr := net.SplitHostPort(listen)
		if serr != nil || host != "" {
			return nil, fmt.Errorf("receive.listen %q: %w", listen, err)
		}
		ap, err = netip.ParseAddrPort(net.JoinHostPort("::", port))
		if err != nil {
			return nil, fmt.Errorf("receive.listen %q: %w", listen, err)
		}
	}
	if !ap.Addr().IsUnspecified() {
		return []netip.AddrPort{ap}, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list local addresses: %w", err)
	}
	var out []netip.AddrPort
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, netip.AddrPortFrom(p.Addr(), ap.Port()))
		}
	}
	return out, nil
}

// listenMetrics opens admin.metrics-listen. The metrics say how much mail
// goes where; off loopback that is for the admin to decide, so it is
// allowed with a warning.
func listenMetrics(addr string, logger *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.metrics-listen %s: %w", addr, err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		logger.Warn("metrics are served beyond loopback; restrict access to them", "listen", ln.Addr().String())
	}
	return ln, nil
}

// metricsHandler serves the Prometheus exposition at /metrics and, with
// admin.pprof, Go's runtime profiles at /debug/pprof/ (go tool pprof
// http://127.0.0.1:9425/debug/pprof/profile).
func metricsHandler(reg *prometheus.Registry, profiles bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if profiles {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}
