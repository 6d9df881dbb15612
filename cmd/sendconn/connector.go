package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/store"
)

// connectorKind drives every printer for Send connectors.
var connectorKind = func() *objectKind {
	k := &objectKind{
		Name:        "send connectors",
		DefaultView: connector.DefaultView,
		Identity:    func(obj any) string { return obj.(*connector.SendConnector).Identity() },
	}
	for _, p := range connector.Properties() {
		get := p.Get
		k.Columns = append(k.Columns, column{Name: p.Name, Get: func(obj any) any { return get(obj.(*connector.SendConnector)) }})
	}
	return k
}()

func connectorObjects(cs []connector.SendConnector) []any {
	return pointersTo(cs)
}

// addOutputFlags defines -o, --property and --no-headers.
func addOutputFlags(fs *pflag.FlagSet, o *outputOptions) {
	fs.StringVarP(&o.Format, "output", "o", "table", "output format: "+strings.Join(outputFormats, ", "))
	fs.StringSliceVar(&o.Properties, "property", nil, "properties to show, comma-separated ('*' for all), as Format-Table/Format-List take them")
	fs.BoolVar(&o.NoHeaders, "no-headers", false, "leave out the header row (table, csv)")
	annotate(fs.Lookup("output"), syntaxAnnotation, "format")
	annotate(fs.Lookup("property"), syntaxAnnotation, "list")
	annotate(fs.Lookup("property"), psNameAnnotation, "Property")
}

func addWhatIfFlag(fs *pflag.FlagSet, whatIf *bool) {
	fs.BoolVar(whatIf, "whatif", false, "show what would change, change nothing")
	annotate(fs.Lookup("whatif"), psNameAnnotation, "WhatIf")
}

func addIdentityFlag(fs *pflag.FlagSet, identity *string) {
	fs.StringVar(identity, "identity", "", "connector name or Guid (or give it as an argument; '-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	annotate(fs.Lookup("identity"), syntaxAnnotation, "name|guid")
}

// subjectError names the object a failure is about, when a command works
// on several.
type subjectError struct {
	subject string
	err     error
}

func (e *subjectError) Error() string { return e.subject + ": " + e.err.Error() }
func (e *subjectError) Unwrap() error { return e.err }

// ---- new ----

type newOptions struct {
	props      *propertyFlags
	cred       credentialOptions
	usage      string
	switches   map[string]*bool
	whatIf     bool
	out        outputOptions
	positional string
}

func newNewCmd(app *App) *cobra.Command {
	o := &newOptions{switches: map[string]*bool{}}
	cmd := &cobra.Command{
		Use:   "new [NAME] --address-spaces SPACES [flags]",
		Short: "Create a Send connector",
		Long: `Create a Send connector, as New-SendConnector does. Name and address spaces are
required; everything else has Exchange's default. Routing is by MX records
unless smart hosts are given. The new connector gets the default header
firewall permissions, whatever its usage type (see 'sendconn permission').
The new connector is printed.`,
		Example: `  # Seed scenario: every domain through one smart host
  sendconn new --name "Smart host to Internet" --address-spaces '*' --smart-hosts 192.168.3.2

  # The same, as written in the Exchange Management Shell
  sendconn New-SendConnector -Name "Smart host to Internet" -AddressSpaces '*' -Custom \
      -DNSRoutingEnabled '$false' -SmartHosts 192.168.3.2 -SmartHostAuthMechanism None

  # Internet connector using MX records
  sendconn new "To Internet" --internet --address-spaces '*'

  # Authenticated relay (password from a file, never a flag)
  sendconn new "Relay" --address-spaces '*' --smart-hosts relay.example.net --port 587 \
      --smart-host-auth-mechanism BasicAuthRequireTLS --auth-username svc-relay \
      --auth-password-file /etc/sendconn/relay.pw`,
		Annotations: map[string]string{cmdletAnnotation: "New-SendConnector"},
		Args:        cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.positional = args[0]
			}
			return runNew(cmd.Context(), app, cmd.Flags(), o)
		},
	}
	fs := cmd.Flags()
	o.props = addPropertyFlags(fs, false)
	fs.StringVar(&o.usage, "usage", "", "usage template: "+strings.Join(connector.UsageNames(), ", ")+" (Internal: MaxMessageSize Unlimited; Partner: domain security, MX routing)")
	annotate(fs.Lookup("usage"), psNameAnnotation, "Usage")
	annotate(fs.Lookup("usage"), syntaxAnnotation, "type")
	for _, u := range connector.UsageNames() {
		b := new(bool)
		o.switches[u] = b
		name := strings.ToLower(u)
		fs.BoolVar(b, name, false, "same as --usage "+u)
		annotate(fs.Lookup(name), psNameAnnotation, u)
	}
	addCredentialFlags(fs, &o.cred)
	addWhatIfFlag(fs, &o.whatIf)
	addOutputFlags(fs, &o.out)
	return cmd
}

func runNew(ctx context.Context, app *App, fs *pflag.FlagSet, o *newOptions) error {
	if err := o.out.validate(connectorKind); err != nil {
		return err
	}
	patch, err := o.props.patch()
	if err != nil {
		return err
	}
	if o.positional != "" {
		if patch.Name.Set && patch.Name.V != o.positional {
			return usageErrorf("the name is given twice (%q and --name %q)", o.positional, patch.Name.V)
		}
		if verr := connector.ValidateName(o.positional); verr != nil {
			return &connector.ValidationError{Problems: []*connector.PropertyError{{Property: "Name", Value: o.positional, Code: "InvalidName", Message: verr.Error()}}}
		}
		patch.Name = connector.Some(o.positional)
	}
	usage, err := o.chosenUsage(fs)
	if err != nil {
		return err
	}
	cred, err := o.cred.resolve(fs, app.IO.In, false, app.Getenv, nil)
	switch {
	case errors.Is(err, errNoCredentialChange):
	case err != nil:
		return err
	default:
		patch.AuthenticationCredential = connector.Some(cred)
	}
	c, notices, err := connector.New(app.defaults(), usage, patch)
	if err != nil {
		return err
	}
	printNotices(app, "", notices)
	s := app.store()
	if o.whatIf {
		err := s.View(ctx, func(tx store.Tx) error {
			if _, err := tx.Connector(c.Name); err == nil {
				return &store.ExistsError{Kind: "connector", Name: c.Name}
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(app.IO.Out, "What if: Creating Send connector %q.\n", c.Name)
		return nil
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		created := c.Clone()
		if err := tx.CreateConnector(&created, permissions.DefaultACL(app.cfg.OrganizationDomain)); err != nil {
			return err
		}
		c = created
		return nil
	})
	if err != nil {
		return err
	}
	return app.printObjects(connectorKind, connectorObjects([]connector.SendConnector{c}), o.out)
}

// chosenUsage reads --usage or one of the switches; two are a contradiction,
// as New-SendConnector says.
func (o *newOptions) chosenUsage(fs *pflag.FlagSet) (connector.Usage, error) {
	var chosen []string
	if fs.Changed("usage") {
		chosen = append(chosen, o.usage)
	}
	for _, name := range connector.UsageNames() {
		if *o.switches[name] {
			chosen = append(chosen, name)
		}
	}
	switch len(chosen) {
	case 0:
		return connector.UsageCustom, nil
	case 1:
		u, err := connector.ParseUsage(chosen[0])
		if err != nil {
			return 0, &connector.ValidationError{Problems: []*connector.PropertyError{{Property: "Usage", Value: chosen[0], Code: "InvalidValue", Message: err.Error()}}}
		}
		return u, nil
	}
	return 0, &connector.ValidationError{Problems: []*connector.PropertyError{{
		Property: "Usage", Value: strings.Join(chosen, ", "), Code: "NewSendConnectorIncorrectUsageParameters",
		Message: "give at most one of --usage, --custom, --internal, --internet, --partner",
	}}}
}

func printNotices(app *App, subject string, notices []string) {
	for _, n := range notices {
		if subject != "" {
			n = subject + ": " + n
		}
		fmt.Fprintf(app.IO.ErrOut, "sendconn: note: %s\n", n)
	}
}

// ---- set ----

type setOptions struct {
	props    *propertyFlags
	cred     credentialOptions
	identity string
	whatIf   bool
	out      outputOptions
}

func newSetCmd(app *App) *cobra.Command {
	o := &setOptions{}
	cmd := &cobra.Command{
		Use:   "set IDENTITY... [flags]",
		Short: "Change Send connectors",
		Long: `Change Send connectors, as Set-SendConnector does. Only the properties given
change; the result is validated as a whole, and all connectors named change
in one transaction or none does. IDENTITY is a name or Guid; '-' reads
identities from standard input (names one per line, or 'get -o json'
output). Prints nothing unless -o is given.`,
		Example: `  sendconn set "To Internet" --max-message-size 20MB
  sendconn set "To Internet" --add-address-spaces 'fabrikam.com;5'
  sendconn set "Relay" --smart-hosts relay.example.com      # switches to smart-host routing
  sendconn set "Relay" --dns-routing-enabled=true           # back to MX routing; clears smart hosts
  sendconn Set-SendConnector "Contoso.com Send Connector" -FrontendProxyEnabled '$true'

  # Disable every connector whose name contains Partner
  sendconn get -o name | grep Partner | sendconn set - --enabled=false`,
		Annotations: map[string]string{cmdletAnnotation: "Set-SendConnector"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSet(cmd.Context(), app, cmd.Flags(), o, args)
		},
	}
	fs := cmd.Flags()
	addIdentityFlag(fs, &o.identity)
	o.props = addPropertyFlags(fs, true)
	addCredentialFlags(fs, &o.cred)
	addWhatIfFlag(fs, &o.whatIf)
	addOutputFlags(fs, &o.out)
	return cmd
}

func runSet(ctx context.Context, app *App, fs *pflag.FlagSet, o *setOptions, args []string) error {
	if err := o.out.validate(connectorKind); err != nil {
		return err
	}
	if len(args) == 0 && o.identity == "" {
		return usageErrorf("set needs an identity: a connector name or Guid, or '-' for standard input")
	}
	patch, err := o.props.patch()
	if err != nil {
		return err
	}
	ids, stdinUsed, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil {
		return err
	}
	credFor, err := o.credentialChange(fs, app, stdinUsed)
	if err != nil {
		return err
	}
	if patch.IsEmpty() && credFor == nil {
		return usageErrorf("nothing to change: give at least one property flag (see 'sendconn set --help')")
	}
	if patch.Name.Set && len(ids) > 1 {
		return usageErrorf("--name renames one connector; %d were given", len(ids))
	}
	var changed []connector.SendConnector
	type notice struct {
		subject string
		lines   []string
	}
	var notices []notice
	apply := func(tx store.Tx) error {
		changed, notices = nil, nil
		seen := map[string]bool{}
		for _, id := range ids {
			c, err := tx.Connector(id)
			if err != nil {
				return err
			}
			if seen[c.Guid] {
				continue
			}
			seen[c.Guid] = true
			p := patch
			if credFor != nil {
				cred, err := credFor(c.AuthenticationCredential)
				if err != nil {
					return err
				}
				p.AuthenticationCredential = connector.Some(cred)
			}
			next, n, err := c.Apply(p)
			if err != nil {
				if len(ids) > 1 {
					return &subjectError{subject: fmt.Sprintf("connector %q", c.Name), err: err}
				}
				return err
			}
			notices = append(notices, notice{c.Name, n})
			if !o.whatIf {
				if err := tx.UpdateConnector(&next); err != nil {
					return err
				}
			}
			changed = append(changed, next)
		}
		return nil
	}
	s := app.store()
	if o.whatIf {
		err = s.View(ctx, apply)
	} else {
		err = s.Update(ctx, apply)
	}
	if err != nil {
		return err
	}
	for _, n := range notices {
		subject := ""
		if len(notices) > 1 {
			subject = fmt.Sprintf("connector %q", n.subject)
		}
		printNotices(app, subject, n.lines)
	}
	if o.whatIf {
		for _, c := range changed {
			fmt.Fprintf(app.IO.Out, "What if: Setting Send connector %q.\n", c.Name)
		}
		return nil
	}
	if fs.Changed("output") {
		return app.printObjects(connectorKind, connectorObjects(changed), o.out)
	}
	return nil
}

// credentialChange returns nil when no credential flag was given, else a
// function computing each connector's new credential from its current one.
func (o *setOptions) credentialChange(fs *pflag.FlagSet, app *App, stdinUsed bool) (func(*connector.Credential) (*connector.Credential, error), error) {
	// Read any password once, before the transaction: standard input
	// cannot be read again if the transaction is retried.
	probe, err := o.cred.resolve(fs, app.IO.In, stdinUsed, app.Getenv, &connector.Credential{})
	if errors.Is(err, errNoCredentialChange) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	userGiven := fs.Changed("auth-username")
	return func(existing *connector.Credential) (*connector.Credential, error) {
		if probe == nil {
			return nil, nil // --auth-username '' removes the credential
		}
		cred := &connector.Credential{}
		if existing != nil {
			*cred = *existing
		}
		if userGiven {
			cred.UserName = probe.UserName
		} else if existing == nil {
			return nil, usageErrorf("a password needs --auth-username (the connector has no credential yet)")
		}
		if probe.Password.IsSet() {
			cred.Password = probe.Password
		}
		return cred, nil
	}, nil
}

// ---- get ----

type getOptions struct {
	identity string
	out      outputOptions
}

func newGetCmd(app *App) *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get [IDENTITY...] [flags]",
		Short: "Show Send connectors",
		Long: `Show Send connectors, as Get-SendConnector does: all of them, or those named
(names, Guids or patterns such as '*Internet*'). The default table shows
Identity, AddressSpaces and Enabled; -o list shows every property.`,
		Example: `  sendconn get
  sendconn get "To Internet" -o list
  sendconn get -o json | jq '.[].Name'
  sendconn get --property Identity,SmartHosts,Port
  sendconn Get-SendConnector '*Partner*' -o name`,
		Annotations: map[string]string{cmdletAnnotation: "Get-SendConnector"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGet(cmd.Context(), app, o, args)
		},
	}
	fs := cmd.Flags()
	addIdentityFlag(fs, &o.identity)
	addOutputFlags(fs, &o.out)
	return cmd
}

func runGet(ctx context.Context, app *App, o *getOptions, args []string) error {
	if err := o.out.validate(connectorKind); err != nil {
		return err
	}
	ids, _, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil {
		return err
	}
	var found []connector.SendConnector
	var missing []string
	err = app.store().View(ctx, func(tx store.Tx) error {
		var err error
		if len(ids) == 0 && len(args) == 0 && o.identity == "" {
			found, err = tx.Connectors()
			return err
		}
		found, missing, err = findConnectors(tx, ids)
		return err
	})
	if err != nil {
		return err
	}
	if err := app.printObjects(connectorKind, connectorObjects(found), o.out); err != nil {
		return err
	}
	return notFound(missing)
}

// notFound reports identities that matched nothing, after whatever was
// found has been printed.
func notFound(missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	quoted := make([]string, len(missing))
	for i, m := range missing {
		quoted[i] = fmt.Sprintf("%q", m)
	}
	if len(missing) == 1 {
		return withHint(&store.NotFoundError{Kind: "connector", Identity: missing[0]}, "list connectors with 'sendconn get'")
	}
	return withHint(fmt.Errorf("connectors %s not found: %w", strings.Join(quoted, ", "), store.ErrNotFound), "list connectors with 'sendconn get'")
}

// ---- remove ----

type removeOptions struct {
	identity string
	confirm  bool
	yes      bool
	whatIf   bool
	out      outputOptions
}

func newRemoveCmd(app *App) *cobra.Command {
	o := &removeOptions{}
	cmd := &cobra.Command{
		Use:   "remove IDENTITY... [flags]",
		Short: "Remove Send connectors",
		Long: `Remove Send connectors and everything stored with them, as
Remove-SendConnector does. On a terminal it asks first; otherwise it needs
--confirm=false (or -y), and without it removes nothing and exits 2.`,
		Example: `  sendconn remove "Old partner"
  sendconn remove "Old partner" -y
  sendconn Remove-SendConnector "Old partner" -Confirm:'$false'
  sendconn get '*Test*' -o name | sendconn remove - -y`,
		Annotations: map[string]string{cmdletAnnotation: "Remove-SendConnector"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(cmd.Context(), app, cmd.Flags(), o, args)
		},
	}
	fs := cmd.Flags()
	addIdentityFlag(fs, &o.identity)
	addConfirmFlags(fs, &o.confirm, &o.yes)
	addWhatIfFlag(fs, &o.whatIf)
	addOutputFlags(fs, &o.out)
	return cmd
}

func runRemove(ctx context.Context, app *App, fs *pflag.FlagSet, o *removeOptions, args []string) error {
	if err := o.out.validate(connectorKind); err != nil {
		return err
	}
	if len(args) == 0 && o.identity == "" {
		return usageErrorf("remove needs an identity: a connector name or Guid, or '-' for standard input")
	}
	ids, stdinUsed, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil || len(ids) == 0 {
		return err
	}
	targets, err := removal[connector.SendConnector]{
		what:    "Send connector",
		find:    store.Tx.Connector,
		guid:    func(c connector.SendConnector) string { return c.Guid },
		name:    func(c connector.SendConnector) string { return c.Name },
		delete:  store.Tx.DeleteConnector,
		confirm: o.confirm && !o.yes,
		whatIf:  o.whatIf,
	}.run(ctx, app, ids, stdinUsed)
	if err != nil || targets == nil {
		return err
	}
	if fs.Changed("output") {
		return app.printObjects(connectorKind, connectorObjects(targets), o.out)
	}
	return nil
}
