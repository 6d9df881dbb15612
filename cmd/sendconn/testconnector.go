package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/store"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
)

// probeRow is one next hop's result, as test-connector prints it.
type probeRow struct {
	Connector string
	delivery.Probe
}

var probeKind = &objectKind{
	Name:        "next hops",
	DefaultView: []string{"Host", "Address", "Result", "Stage", "TLS", "Auth", "Reply"},
	Identity:    func(obj any) string { return obj.(*probeRow).Address },
	Columns: []column{
		{Name: "Connector", Get: func(obj any) any { return obj.(*probeRow).Connector }},
		{Name: "Host", Get: func(obj any) any { return obj.(*probeRow).Host }},
		{Name: "Address", Get: func(obj any) any { return obj.(*probeRow).Address }},
		{Name: "Result", Get: func(obj any) any {
			if obj.(*probeRow).OK {
				return "Success"
			}
			return "Failure"
		}},
		{Name: "Stage", Get: func(obj any) any { return obj.(*probeRow).Stage }},
		{Name: "Reply", Get: func(obj any) any { return obj.(*probeRow).Reply }},
		{Name: "Banner", Get: func(obj any) any { return obj.(*probeRow).Banner }},
		{Name: "Extensions", Get: func(obj any) any { return obj.(*probeRow).Extensions }},
		{Name: "TLS", Get: func(obj any) any { return obj.(*probeRow).TLS }},
		{Name: "CertificateSubject", Get: func(obj any) any {
			if c := obj.(*probeRow).Certificate; c != nil {
				return c.Subject.String()
			}
			return nil
		}},
		{Name: "CertificateNames", Get: func(obj any) any {
			if c := obj.(*probeRow).Certificate; c != nil {
				names := append([]string(nil), c.DNSNames...)
				for _, ip := range c.IPAddresses {
					names = append(names, ip.String())
				}
				return names
			}
			return nil
		}},
		{Name: "CertificateIssuer", Get: func(obj any) any {
			if c := obj.(*probeRow).Certificate; c != nil {
				return c.Issuer.String()
			}
			return nil
		}},
		{Name: "CertificateExpires", Get: func(obj any) any {
			if c := obj.(*probeRow).Certificate; c != nil {
				return connector.FormatTime(c.NotAfter)
			}
			return nil
		}},
		{Name: "Auth", Get: func(obj any) any { return obj.(*probeRow).Auth }},
		{Name: "Duration", Get: func(obj any) any { return obj.(*probeRow).Duration.Round(time.Millisecond).String() }},
	},
}

type testConnectorOptions struct {
	identity string
	domain   string
	out      outputOptions
}

func newTestConnectorCmd(app *App) *cobra.Command {
	o := &testConnectorOptions{}
	cmd := &cobra.Command{
		Use:   "test-connector IDENTITY [--domain DOMAIN] [flags]",
		Short: "Check that a connector's next hops accept a session, without sending mail",
		Long: `Set up a session with each next hop of a Send connector exactly as serve
would, and report per host how far it got: connect (from SourceIPAddress, to
the connector's Port), the banner, EHLO with the connector's Fqdn, STARTTLS
with the connector's TlsAuthLevel verification (the certificate's subject,
names, issuer and expiry are shown even when it is rejected), and AUTH when
the connector authenticates, with the credential from the store, which is
never printed. Then QUIT: no mail is sent.

Smart hosts are resolved as serve resolves them (dns.internal-servers). For a
DNS-routed connector, name the recipient domain whose MX hosts to test with
--domain. The table shows the outcome and the SMTP reply where a host failed;
-o list shows everything. Exits 0 only if every host passed, 1 otherwise.`,
		Example: `  sendconn test-connector "Smart host to Internet"
  sendconn test-connector Internet --domain fabrikam.com -o list`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := oneIdentity(args, o.identity)
			if err != nil {
				return err
			}
			return runTestConnector(cmd.Context(), app, id, o)
		},
	}
	fs := cmd.Flags()
	addIdentityFlag(fs, &o.identity)
	fs.StringVar(&o.domain, "domain", "", "recipient domain whose MX hosts to test (DNS-routed connectors)")
	addOutputFlags(fs, &o.out)
	return cmd
}

func oneIdentity(args []string, flag string) (string, error) {
	switch {
	case len(args) == 1 && flag != "" && args[0] != flag:
		return "", usageErrorf("the identity is given twice (%q and --identity %q)", args[0], flag)
	case len(args) == 1:
		return args[0], nil
	case flag != "":
		return flag, nil
	}
	return "", usageErrorf("which connector? give its name or Guid")
}

func runTestConnector(ctx context.Context, app *App, id string, o *testConnectorOptions) error {
	if err := o.out.validate(probeKind); err != nil {
		return err
	}
	var c connector.SendConnector
	var acl permissions.ACL
	err := app.store().View(ctx, func(tx store.Tx) error {
		var err error
		if c, err = tx.Connector(id); err != nil {
			return err
		}
		acl, err = tx.ACL(c.Guid)
		return err
	})
	if err != nil {
		return withHint(err, "list connectors with 'sendconn get'")
	}
	hop := delivery.Hop{Connector: c, ACL: acl}
	if c.DNSRoutingEnabled() {
		if o.domain == "" {
			return usageErrorf("%q routes by DNS: name the recipient domain to test with --domain", c.Name)
		}
		if hop.Domain, err = connector.NormalizeDomain(o.domain); err != nil {
			return usageErrorf("--domain %q: %v", o.domain, err)
		}
	} else {
		hop.Domain = o.domain
	}
	// The deliverer serve would build, logging nowhere: the results are
	// the output.
	opts, err := transportOptions(app.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	d := delivery.New(opts.Delivery)
	defer d.Close()
	probes, err := d.Probe(ctx, hop)
	if err != nil {
		return fmt.Errorf("%s: next hops: %w", c.Name, err)
	}
	rows := make([]probeRow, len(probes))
	failed := 0
	for i, p := range probes {
		rows[i] = probeRow{Connector: c.Name, Probe: p}
		if !p.OK {
			failed++
		}
	}
	if err := app.printObjects(probeKind, pointersTo(rows), o.out); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%s: %d of %d next hops failed: %s", c.Name, failed, len(probes), firstFailure(probes))
	}
	return nil
}

func firstFailure(ps []delivery.Probe) string {
	for _, p := range ps {
		if !p.OK {
			return strings.TrimSpace(p.Address + " at " + p.Stage + ": " + p.Reply)
		}
	}
	return ""
}
