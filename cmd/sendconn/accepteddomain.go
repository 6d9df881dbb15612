package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/store"
)

var acceptedDomainKind = &objectKind{
	Name:        "accepted domains",
	DefaultView: []string{"Name", "DomainName", "DomainType", "Default"},
	Identity:    func(obj any) string { return obj.(*connector.AcceptedDomain).Name },
	Columns: []column{
		{Name: "Identity", Get: func(obj any) any { return obj.(*connector.AcceptedDomain).Identity() }},
		{Name: "Name", Get: func(obj any) any { return obj.(*connector.AcceptedDomain).Name }},
		{Name: "DomainName", Get: func(obj any) any { return obj.(*connector.AcceptedDomain).DomainName }},
		{Name: "DomainType", Get: func(obj any) any { return obj.(*connector.AcceptedDomain).DomainType.String() }},
		{Name: "Default", Get: func(obj any) any { return obj.(*connector.AcceptedDomain).Default }},
		{Name: "Guid", Get: func(obj any) any { return obj.(*connector.AcceptedDomain).Guid }},
		{Name: "WhenChanged", Get: func(obj any) any { return connector.FormatTime(obj.(*connector.AcceptedDomain).WhenChanged) }},
		{Name: "WhenCreated", Get: func(obj any) any { return connector.FormatTime(obj.(*connector.AcceptedDomain).WhenCreated) }},
	},
}

func acceptedDomainObjects(ds []connector.AcceptedDomain) []any {
	return pointersTo(ds)
}

func newAcceptedDomainCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "accepted-domain",
		Short: "Manage the organization's accepted domains",
		Long: `Manage the domains the organization receives mail for, as New-, Get- and
Remove-AcceptedDomain do. Authoritative and InternalRelay domains are what a
connector's '--' address space stands for; ExternalRelay domains are not.`,
		Example: `  sendconn accepted-domain new --name Contoso --domain-name contoso.com --domain-type Authoritative
  sendconn accepted-domain new --name "Contoso subsidiaries" --domain-name '*.contoso.com' --domain-type InternalRelay
  sendconn accepted-domain get`,
	}
	cmd.AddCommand(newAcceptedDomainNewCmd(app), newAcceptedDomainGetCmd(app), newAcceptedDomainRemoveCmd(app))
	return cmd
}

type acceptedDomainNewOptions struct {
	name, domainName, domainType string
	makeDefault                  bool
	whatIf                       bool
	out                          outputOptions
}

func newAcceptedDomainNewCmd(app *App) *cobra.Command {
	o := &acceptedDomainNewOptions{}
	cmd := &cobra.Command{
		Use:   "new [NAME] --domain-name DOMAIN [flags]",
		Short: "Add an accepted domain",
		Long: `Add an accepted domain, as New-AcceptedDomain does. DOMAIN is a domain name,
or '*.domain' for the domain and all its subdomains. The first accepted
domain becomes the default; --default moves the flag to the new one. Prints
the new domain.`,
		Example: `  sendconn accepted-domain new --name Contoso --domain-name contoso.com --domain-type Authoritative
  sendconn New-AcceptedDomain -Name Contoso -DomainName contoso.com -DomainType Authoritative`,
		Annotations: map[string]string{cmdletAnnotation: "New-AcceptedDomain"},
		Args:        cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if cmd.Flags().Changed("name") && o.name != args[0] {
					return usageErrorf("the name is given twice (%q and --name %q)", args[0], o.name)
				}
				o.name = args[0]
			}
			return runAcceptedDomainNew(cmd.Context(), app, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.name, "name", "", "the accepted domain's name (default: the domain name)")
	annotate(fs.Lookup("name"), psNameAnnotation, "Name")
	fs.StringVar(&o.domainName, "domain-name", "", "the domain, or '*.domain' for it and all its subdomains (required)")
	annotate(fs.Lookup("domain-name"), psNameAnnotation, "DomainName")
	annotate(fs.Lookup("domain-name"), syntaxAnnotation, "domain")
	fs.StringVar(&o.domainType, "domain-type", "", "how mail for it is handled: "+strings.Join(connector.DomainTypeNames(), ", ")+" (default Authoritative)")
	annotate(fs.Lookup("domain-type"), psNameAnnotation, "DomainType")
	annotate(fs.Lookup("domain-type"), syntaxAnnotation, "type")
	fs.BoolVar(&o.makeDefault, "default", false, "make it the default accepted domain")
	annotate(fs.Lookup("default"), psNameAnnotation, "MakeDefault")
	addWhatIfFlag(fs, &o.whatIf)
	addOutputFlags(fs, &o.out)
	return cmd
}

func runAcceptedDomainNew(ctx context.Context, app *App, o *acceptedDomainNewOptions) error {
	if err := o.out.validate(acceptedDomainKind); err != nil {
		return err
	}
	d, err := connector.NewAcceptedDomain(o.name, o.domainName, o.domainType)
	if err != nil {
		return err
	}
	d.Default = o.makeDefault
	create := func(tx store.Tx) error { return tx.CreateAcceptedDomain(&d) }
	if o.whatIf {
		// Run the checks against the real store, then throw the
		// transaction away: View's transaction is read-only, so the
		// duplicate checks run by hand.
		err := app.store().View(ctx, func(tx store.Tx) error {
			for _, id := range []string{d.Name, d.DomainName} {
				if _, err := tx.AcceptedDomain(id); err == nil {
					return &store.ExistsError{Kind: "accepted domain", Name: id}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(app.IO.Out, "What if: Creating accepted domain %q for %s.\n", d.Name, d.DomainName)
		return nil
	}
	if err := app.store().Update(ctx, create); err != nil {
		return err
	}
	return app.printObjects(acceptedDomainKind, acceptedDomainObjects([]connector.AcceptedDomain{d}), o.out)
}

type acceptedDomainGetOptions struct {
	identity string
	out      outputOptions
}

func newAcceptedDomainGetCmd(app *App) *cobra.Command {
	o := &acceptedDomainGetOptions{}
	cmd := &cobra.Command{
		Use:   "get [IDENTITY...] [flags]",
		Short: "Show accepted domains",
		Long: `Show accepted domains, as Get-AcceptedDomain does: all of them, or those named
by name, domain name, Guid or pattern.`,
		Example: `  sendconn accepted-domain get
  sendconn accepted-domain get contoso.com -o list
  sendconn Get-AcceptedDomain -o json`,
		Annotations: map[string]string{cmdletAnnotation: "Get-AcceptedDomain"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAcceptedDomainGet(cmd.Context(), app, o, args)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.identity, "identity", "", "name, domain name or Guid ('-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	addOutputFlags(fs, &o.out)
	return cmd
}

func runAcceptedDomainGet(ctx context.Context, app *App, o *acceptedDomainGetOptions, args []string) error {
	if err := o.out.validate(acceptedDomainKind); err != nil {
		return err
	}
	ids, _, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil {
		return err
	}
	var found []connector.AcceptedDomain
	var missing []string
	err = app.store().View(ctx, func(tx store.Tx) error {
		var err error
		found, missing, err = findAcceptedDomains(tx, ids)
		return err
	})
	if err != nil {
		return err
	}
	if err := app.printObjects(acceptedDomainKind, acceptedDomainObjects(found), o.out); err != nil {
		return err
	}
	if len(missing) > 0 {
		return withHint(&store.NotFoundError{Kind: "accepted domain", Identity: strings.Join(missing, `", "`)},
			"list accepted domains with 'sendconn accepted-domain get'")
	}
	return nil
}

// findAcceptedDomains resolves identities (none means all) to accepted
// domains, each once.
func findAcceptedDomains(tx store.Tx, ids []string) (found []connector.AcceptedDomain, missing []string, err error) {
	all, err := tx.AcceptedDomains()
	if err != nil || len(ids) == 0 {
		return all, nil, err
	}
	seen := map[string]bool{}
	add := func(d connector.AcceptedDomain) {
		if !seen[d.Guid] {
			seen[d.Guid] = true
			found = append(found, d)
		}
	}
	for _, id := range ids {
		if isWildcard(id) {
			for _, d := range all {
				if wildcardMatch(id, d.Name) || wildcardMatch(id, d.DomainName) {
					add(d)
				}
			}
			continue
		}
		d, err := tx.AcceptedDomain(id)
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		add(d)
	}
	return found, missing, nil
}

type acceptedDomainRemoveOptions struct {
	identity     string
	confirm, yes bool
	whatIf       bool
}

func newAcceptedDomainRemoveCmd(app *App) *cobra.Command {
	o := &acceptedDomainRemoveOptions{}
	cmd := &cobra.Command{
		Use:   "remove IDENTITY... [flags]",
		Short: "Remove accepted domains",
		Long: `Remove accepted domains, as Remove-AcceptedDomain does. On a terminal it asks
first; otherwise it needs --confirm=false (or -y).`,
		Example: `  sendconn accepted-domain remove contoso.com -y
  sendconn Remove-AcceptedDomain -Identity Contoso -Confirm:'$false'`,
		Annotations: map[string]string{cmdletAnnotation: "Remove-AcceptedDomain"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAcceptedDomainRemove(cmd.Context(), app, o, args)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.identity, "identity", "", "name, domain name or Guid ('-' reads identities from standard input)")
	annotate(fs.Lookup("identity"), psNameAnnotation, "Identity")
	addConfirmFlags(fs, &o.confirm, &o.yes)
	addWhatIfFlag(fs, &o.whatIf)
	return cmd
}

func runAcceptedDomainRemove(ctx context.Context, app *App, o *acceptedDomainRemoveOptions, args []string) error {
	if len(args) == 0 && o.identity == "" {
		return usageErrorf("accepted-domain remove needs an identity: a name, domain name or Guid, or '-' for standard input")
	}
	ids, stdinUsed, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil || len(ids) == 0 {
		return err
	}
	targets, err := removal[connector.AcceptedDomain]{
		what:    "accepted domain",
		find:    store.Tx.AcceptedDomain,
		guid:    func(d connector.AcceptedDomain) string { return d.Guid },
		name:    func(d connector.AcceptedDomain) string { return d.Name },
		delete:  store.Tx.DeleteAcceptedDomain,
		confirm: o.confirm && !o.yes,
		whatIf:  o.whatIf,
	}.run(ctx, app, ids, stdinUsed)
	if err != nil {
		return err
	}
	for _, d := range targets {
		if d.Default {
			fmt.Fprintf(app.IO.ErrOut, "sendconn: note: %q was the default accepted domain; no domain is the default now\n", d.Name)
		}
	}
	return nil
}
