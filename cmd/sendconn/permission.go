package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/store"
)

// permissionRow is one entry of a connector's access list as Get-ADPermission
// shows it: the entry and the connector it sits on.
type permissionRow struct {
	Identity string
	permissions.ACE
}

// permissionKind drives every printer for access list entries. The columns
// are ADAcePresentationObject's; "Inherited" is the heading Exchange's
// default view gives IsInherited.
var permissionKind = &objectKind{
	Name:        "permissions",
	DefaultView: []string{"Identity", "User", "Deny", "Inherited"},
	Identity:    func(obj any) string { return obj.(*permissionRow).Identity },
	Columns: []column{
		{Name: "Identity", Get: func(obj any) any { return obj.(*permissionRow).Identity }},
		{Name: "User", Get: func(obj any) any { return string(obj.(*permissionRow).User) }},
		{Name: "AccessRights", Get: func(obj any) any { return obj.(*permissionRow).AccessRights.Names() }},
		{Name: "ExtendedRights", Get: func(obj any) any { return obj.(*permissionRow).ExtendedRights.Names() }},
		{Name: "Deny", Get: func(obj any) any { return obj.(*permissionRow).Deny }},
		{Name: "IsInherited", Get: func(obj any) any { return obj.(*permissionRow).IsInherited }},
		{Name: "InheritanceType", Get: func(obj any) any { return obj.(*permissionRow).InheritanceType.String() }},
		{Name: "Inherited", Alias: true, Get: func(obj any) any { return obj.(*permissionRow).IsInherited }},
	},
}

func permissionObjects(connectorName string, acl permissions.ACL) []any {
	objs := make([]any, len(acl))
	for i, e := range acl {
		objs[i] = &permissionRow{Identity: connectorName, ACE: e}
	}
	return objs
}

func newPermissionCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "permission",
		Short: "Manage the extended rights on Send connectors (the header firewall)",
		Long: `Manage who may receive which internal headers through a Send connector, as
Add-ADPermission, Remove-ADPermission and Get-ADPermission do for Exchange.

Each connector carries an access list. When a message leaves, the transport
decides which principal the remote end is (anonymous unless the connector
authenticates it otherwise) and strips every header whose right that
principal lacks:

  ms-Exch-Send-Headers-Routing        Received:, Resent-*
  ms-Exch-Send-Headers-Organization   X-MS-Exchange-Organization-*
  ms-Exch-Send-Headers-Forest         X-MS-Exchange-Forest-*
  ms-Exch-SMTP-Send-Exch50            (stored and shown only)
  ms-Exch-SMTP-Send-XShadow           (stored and shown only)

A deny entry beats an allow entry. See docs/header-firewall.md.`,
		Example: `  # Strip internal Received: headers from mail to the Internet
  sendconn permission remove "To Internet" --user 'NT AUTHORITY\ANONYMOUS LOGON' \
      --extended-rights ms-Exch-Send-Headers-Routing
  sendconn permission get "To Internet" --deny=false --inherited=false --property User,ExtendedRights`,
	}
	cmd.AddCommand(newPermissionAddCmd(app), newPermissionRemoveCmd(app), newPermissionGetCmd(app))
	return cmd
}

// aceOptions are the flags add and remove share: the entry to add or take
// away.
type aceOptions struct {
	identity        string
	user            string
	extendedRights  []string
	accessRights    []string
	deny            bool
	inheritanceType string
	whatIf          bool
	out             outputOptions
}

func addACEFlags(fs *pflag.FlagSet, o *aceOptions, verb string) {
	addIdentityFlag(fs, &o.identity)
	fs.StringVar(&o.user, "user", "", "the principal: a well-known name such as 'NT AUTHORITY\\ANONYMOUS LOGON', DOMAIN\\name or name@domain (required)")
	annotate(fs.Lookup("user"), psNameAnnotation, "User")
	annotate(fs.Lookup("user"), syntaxAnnotation, "principal")
	fs.StringSliceVar(&o.extendedRights, "extended-rights", nil, "rights to "+verb+", comma-separated: "+strings.Join(permissions.AllRightNames(), ", "))
	annotate(fs.Lookup("extended-rights"), psNameAnnotation, "ExtendedRights")
	annotate(fs.Lookup("extended-rights"), syntaxAnnotation, "list")
	fs.StringSliceVar(&o.accessRights, "access-rights", nil, "Active Directory access rights, comma-separated (ExtendedRight is implied by --extended-rights)")
	annotate(fs.Lookup("access-rights"), psNameAnnotation, "AccessRights")
	annotate(fs.Lookup("access-rights"), syntaxAnnotation, "list")
	fs.BoolVar(&o.deny, "deny", false, "a deny entry instead of an allow entry")
	annotate(fs.Lookup("deny"), psNameAnnotation, "Deny")
	fs.StringVar(&o.inheritanceType, "inheritance-type", "", "inheritance of a new entry: "+strings.Join(permissions.InheritanceTypeNames(), ", ")+" (default: that of the user's existing entry, else All)")
	annotate(fs.Lookup("inheritance-type"), psNameAnnotation, "InheritanceType")
	annotate(fs.Lookup("inheritance-type"), syntaxAnnotation, "type")
	addWhatIfFlag(fs, &o.whatIf)
	addOutputFlags(fs, &o.out)
}

// entry turns the flags into the entry they describe, checking everything
// before the store is opened.
func (o *aceOptions) entry(fs *pflag.FlagSet) (permissions.ACE, error) {
	var e permissions.ACE
	if strings.TrimSpace(o.user) == "" {
		return e, usageErrorf("--user is required: the principal whose rights change, such as 'NT AUTHORITY\\ANONYMOUS LOGON'")
	}
	user, err := permissions.ParsePrincipal(o.user)
	if err != nil {
		return e, &usageError{msg: "--user: " + err.Error()}
	}
	rights, err := permissions.ParseRights(o.extendedRights)
	if err != nil {
		return e, &usageError{msg: "--extended-rights: " + err.Error()}
	}
	access, err := permissions.ParseAccessRights(o.accessRights)
	if err != nil {
		return e, &usageError{msg: "--access-rights: " + err.Error()}
	}
	if rights == 0 && access == 0 {
		return e, usageErrorf("give --extended-rights or --access-rights: an entry must grant or deny something")
	}
	e = permissions.ACE{User: user, ExtendedRights: rights, AccessRights: access, Deny: o.deny, InheritanceType: permissions.DefaultInheritance}
	if fs.Changed("inheritance-type") {
		if e.InheritanceType, err = permissions.ParseInheritanceType(o.inheritanceType); err != nil {
			return e, &usageError{msg: "--inheritance-type: " + err.Error()}
		}
	}
	return e, nil
}

func newPermissionAddCmd(app *App) *cobra.Command {
	o := &aceOptions{}
	cmd := &cobra.Command{
		Use:   "add IDENTITY... --user PRINCIPAL --extended-rights RIGHT,... [flags]",
		Short: "Grant or deny extended rights on Send connectors",
		Long: `Grant (or with --deny, deny) extended rights to a principal on Send
connectors, as Add-ADPermission does. The rights join the principal's
existing entry of the same kind; a right the entry already has is reported
and nothing is written. Prints the principal's entries afterwards.`,
		Example: `  # Let organization headers through to a partner reached over a trusted link
  sendconn permission add "To Partner" --user 'MS Exchange\Externally Secured Servers' \
      --extended-rights ms-Exch-Send-Headers-Organization

  # Strip Received: headers with a deny entry instead of removing the allow
  sendconn Add-ADPermission -Identity "To Internet" -User 'NT AUTHORITY\ANONYMOUS LOGON' \
      -ExtendedRights ms-Exch-Send-Headers-Routing -Deny`,
		Annotations: map[string]string{cmdletAnnotation: "Add-ADPermission"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runChangeACL(cmd.Context(), app, cmd.Flags(), o, args, true)
		},
	}
	addACEFlags(cmd.Flags(), o, "grant or deny")
	return cmd
}

func newPermissionRemoveCmd(app *App) *cobra.Command {
	o := &aceOptions{}
	cmd := &cobra.Command{
		Use:   "remove IDENTITY... --user PRINCIPAL --extended-rights RIGHT,... [flags]",
		Short: "Take extended rights away from principals on Send connectors",
		Long: `Take rights out of a principal's explicit entries on Send connectors, as
Remove-ADPermission does: allow entries, or deny entries with --deny. An
entry left with no right disappears. Removing what is not there says so and
writes nothing. Prints nothing unless -o is given.`,
		Example: `  # Strip internal Received: headers from mail to the Internet
  sendconn permission remove "To Internet" --user 'NT AUTHORITY\ANONYMOUS LOGON' \
      --extended-rights ms-Exch-Send-Headers-Routing
  sendconn Remove-ADPermission -Identity "To Internet" -User 'NT AUTHORITY\ANONYMOUS LOGON' \
      -ExtendedRights ms-Exch-Send-Headers-Routing

  # The same on every connector to the Internet
  sendconn get '*Internet*' -o name | sendconn permission remove - \
      --user 'NT AUTHORITY\ANONYMOUS LOGON' --extended-rights ms-Exch-Send-Headers-Routing`,
		Annotations: map[string]string{cmdletAnnotation: "Remove-ADPermission"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runChangeACL(cmd.Context(), app, cmd.Flags(), o, args, false)
		},
	}
	addACEFlags(cmd.Flags(), o, "take away")
	return cmd
}

// runChangeACL adds or removes one entry on every connector named, in one
// transaction.
func runChangeACL(ctx context.Context, app *App, fs *pflag.FlagSet, o *aceOptions, args []string, add bool) error {
	if err := o.out.validate(permissionKind); err != nil {
		return err
	}
	verb := map[bool]string{true: "add", false: "remove"}[add]
	if len(args) == 0 && o.identity == "" {
		return usageErrorf("permission %s needs an identity: a connector name or Guid, or '-' for standard input", verb)
	}
	req, err := o.entry(fs)
	if err != nil {
		return err
	}
	ids, _, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil {
		return err
	}
	type outcome struct {
		name    string
		changed bool
		entries permissions.ACL // the user's entries afterwards
		note    string
	}
	var outcomes []outcome
	apply := func(tx store.Tx) error {
		outcomes = nil
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
			acl, err := tx.ACL(c.Guid)
			if err != nil {
				return err
			}
			var next permissions.ACL
			var note string
			if add {
				next, note, err = addEntry(acl, req, fs.Changed("inheritance-type"))
			} else {
				next, note, err = removeEntry(acl, req)
			}
			if err != nil {
				return &subjectError{subject: fmt.Sprintf("connector %q", c.Name), err: err}
			}
			changed := !slices.Equal(acl, next)
			if changed && !o.whatIf {
				if err := tx.PutACL(c.Guid, next); err != nil {
					return err
				}
			}
			var mine permissions.ACL
			for _, e := range next.ForUser(req.User) {
				if e.Deny == req.Deny {
					mine = append(mine, e)
				}
			}
			outcomes = append(outcomes, outcome{name: c.Name, changed: changed, entries: mine, note: note})
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
	var shown []any
	for _, oc := range outcomes {
		switch {
		case !oc.changed:
			fmt.Fprintf(app.IO.ErrOut, "sendconn: note: connector %q: %s; nothing changed\n", oc.name, oc.note)
		case o.whatIf:
			fmt.Fprintf(app.IO.Out, "What if: %s on Send connector %q: %s.\n", map[bool]string{true: "Adding permission", false: "Removing permission"}[add], oc.name, describeEntry(req))
		}
		if oc.changed {
			shown = append(shown, permissionObjects(oc.name, oc.entries)...)
		}
	}
	if o.whatIf || (!add && !fs.Changed("output")) {
		return nil
	}
	return app.printObjects(permissionKind, shown, o.out)
}

// addEntry adds req to acl. Without an explicit --inheritance-type the
// rights join the user's existing entry of the same kind, whatever its
// inheritance, so that "grant X" reads as one entry per principal, as the
// defaults do. It returns the note to print when nothing changes.
func addEntry(acl permissions.ACL, req permissions.ACE, inheritanceGiven bool) (permissions.ACL, string, error) {
	if !inheritanceGiven {
		want := req.AccessRights
		if req.ExtendedRights != 0 {
			want |= permissions.ExtendedRight
		}
		for _, e := range acl {
			if !e.IsInherited && e.User.Equal(req.User) && e.Deny == req.Deny && e.AccessRights == want {
				req.InheritanceType = e.InheritanceType
				break
			}
		}
	}
	next, _, err := acl.Add(req)
	if err != nil {
		return nil, "", err
	}
	return next, fmt.Sprintf("%s already has %s (%s)", req.User, describeRights(req), allowOrDeny(req.Deny)), nil
}

func removeEntry(acl permissions.ACL, req permissions.ACE) (permissions.ACL, string, error) {
	next, _, err := acl.Remove(req)
	if errors.Is(err, permissions.ErrInheritedEntry) {
		return nil, "", &usageError{msg: err.Error()}
	}
	if err != nil {
		return nil, "", err
	}
	return next, fmt.Sprintf("%s has no explicit %s entry with %s", req.User, allowOrDeny(req.Deny), describeRights(req)), nil
}

func describeRights(e permissions.ACE) string {
	var parts []string
	if e.ExtendedRights != 0 {
		parts = append(parts, e.ExtendedRights.String())
	}
	if extra := e.AccessRights &^ permissions.ExtendedRight; extra != 0 || e.ExtendedRights == 0 {
		parts = append(parts, e.AccessRights.String())
	}
	return strings.Join(parts, "; ")
}

func describeEntry(e permissions.ACE) string {
	return fmt.Sprintf("%s %s (%s)", e.User, describeRights(e), allowOrDeny(e.Deny))
}

func allowOrDeny(deny bool) string {
	if deny {
		return "deny"
	}
	return "allow"
}

// ---- permission get ----

type permissionGetOptions struct {
	identity  string
	user      string
	deny      bool
	inherited bool
	out       outputOptions
}

func newPermissionGetCmd(app *App) *cobra.Command {
	o := &permissionGetOptions{}
	cmd := &cobra.Command{
		Use:   "get IDENTITY... [flags]",
		Short: "Show the access lists of Send connectors",
		Long: `Show the entries of Send connectors' access lists, as Get-ADPermission does:
one row per entry, explicit entries before inherited ones, deny before
allow. The default table shows Identity, User, Deny and Inherited; ask for
ExtendedRights with --property. --deny and --inherited filter only when
given, as Exchange's "where {($_.Deny -eq $false) -and ($_.IsInherited -eq
$false)}" does.`,
		Example: `  sendconn permission get "To Internet"
  sendconn permission get "To Fabrikam.com" --deny=false --inherited=false --property User,ExtendedRights
  sendconn permission get "To Fabrikam.com" --user 'NT AUTHORITY\ANONYMOUS LOGON' --property User,ExtendedRights,Deny,IsInherited
  sendconn Get-ADPermission -Identity "To Internet" -o json`,
		Annotations: map[string]string{cmdletAnnotation: "Get-ADPermission"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPermissionGet(cmd.Context(), app, cmd.Flags(), o, args)
		},
	}
	fs := cmd.Flags()
	addIdentityFlag(fs, &o.identity)
	fs.StringVar(&o.user, "user", "", "only the entries for this principal")
	annotate(fs.Lookup("user"), psNameAnnotation, "User")
	annotate(fs.Lookup("user"), syntaxAnnotation, "principal")
	fs.BoolVar(&o.deny, "deny", false, "only deny entries (--deny=false: only allow entries)")
	annotate(fs.Lookup("deny"), psNameAnnotation, "Deny")
	fs.BoolVar(&o.inherited, "inherited", false, "only inherited entries (--inherited=false: only explicit ones)")
	annotate(fs.Lookup("inherited"), psNameAnnotation, "IsInherited")
	addOutputFlags(fs, &o.out)
	return cmd
}

func runPermissionGet(ctx context.Context, app *App, fs *pflag.FlagSet, o *permissionGetOptions, args []string) error {
	if err := o.out.validate(permissionKind); err != nil {
		return err
	}
	if len(args) == 0 && o.identity == "" {
		return usageErrorf("permission get needs an identity: a connector name or Guid, a pattern such as '*', or '-' for standard input")
	}
	var user permissions.Principal
	if o.user != "" {
		var err error
		if user, err = permissions.ParsePrincipal(o.user); err != nil {
			return &usageError{msg: "--user: " + err.Error()}
		}
	}
	ids, _, err := identityArgs(app.IO.In, args, o.identity)
	if err != nil {
		return err
	}
	var rows []any
	var missing []string
	err = app.store().View(ctx, func(tx store.Tx) error {
		found, miss, err := findConnectors(tx, ids)
		if err != nil {
			return err
		}
		missing = miss
		for _, c := range found {
			acl, err := tx.ACL(c.Guid)
			if err != nil {
				return err
			}
			var keep permissions.ACL
			for _, e := range acl.ForUser(user).Canonical() {
				if fs.Changed("deny") && e.Deny != o.deny || fs.Changed("inherited") && e.IsInherited != o.inherited {
					continue
				}
				keep = append(keep, e)
			}
			rows = append(rows, permissionObjects(c.Name, keep)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := app.printObjects(permissionKind, rows, o.out); err != nil {
		return err
	}
	return notFound(missing)
}

// findConnectors resolves identities (names, Guids, patterns) to
// connectors, each once, in the order given; identities that match nothing
// come back in missing.
func findConnectors(tx store.Tx, ids []string) (found []connector.SendConnector, missing []string, err error) {
	all, err := tx.Connectors()
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	add := func(c connector.SendConnector) {
		if !seen[c.Guid] {
			seen[c.Guid] = true
			found = append(found, c)
		}
	}
	for _, id := range ids {
		if isWildcard(id) {
			for _, c := range all {
				if wildcardMatch(id, c.Name) {
					add(c)
				}
			}
			continue
		}
		c, err := tx.Connector(id)
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		add(c)
	}
	return found, missing, nil
}
