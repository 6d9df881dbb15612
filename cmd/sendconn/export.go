package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/store"
)

func newExportCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Print the configuration as an Exchange Management Shell script",
		Long: `Print the accepted domains, the Send connectors and the permission changes
made to them (relative to the access list every new connector gets) as
Exchange Management Shell lines. 'sendconn exec' turns the script back into
the same configuration (new Guids and timestamps aside), and an Exchange
admin can read it.

Connectors list only the properties that differ from what New-SendConnector
gives. Passwords are never exported: a connector with a credential is
created without authentication, and a commented line says how to add the
credential back.`,
		Example: `  sendconn export > sendconn.ps1
  sendconn export | sendconn --store /var/lib/sendconn/copy.db exec -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var conns []connector.SendConnector
			var acls []permissions.ACL
			var domains []connector.AcceptedDomain
			err := app.store().View(cmd.Context(), func(tx store.Tx) error {
				var err error
				if domains, err = tx.AcceptedDomains(); err != nil {
					return err
				}
				if conns, err = tx.Connectors(); err != nil {
					return err
				}
				for _, c := range conns {
					acl, err := tx.ACL(c.Guid)
					if err != nil {
						return err
					}
					acls = append(acls, acl)
				}
				return nil
			})
			if err != nil {
				return err
			}
			return writeExport(app.IO.Out, app, domains, conns, acls)
		},
	}
}

func writeExport(w io.Writer, app *App, domains []connector.AcceptedDomain, conns []connector.SendConnector, acls []permissions.ACL) error {
	fmt.Fprintln(w, "# sendconn configuration, as Exchange Management Shell lines.")
	fmt.Fprintln(w, "# Run it with: sendconn exec FILE")
	if len(domains) > 0 {
		fmt.Fprintln(w, "\n# Accepted domains (the default one first, so that it stays the default).")
	}
	slices.SortStableFunc(domains, func(a, b connector.AcceptedDomain) int {
		switch {
		case a.Default && !b.Default:
			return -1
		case b.Default && !a.Default:
			return 1
		}
		return 0
	})
	for _, d := range domains {
		fmt.Fprintf(w, "New-AcceptedDomain -Name %s -DomainName %s -DomainType %s\n", psQuote(d.Name), psQuote(d.DomainName), d.DomainType)
	}
	defaultACL := permissions.DefaultACL(app.cfg.OrganizationDomain)
	for i, c := range conns {
		fmt.Fprintf(w, "\n# Send connector %s\n", c.Name)
		line, cred, err := newConnectorLine(app, c)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, line)
		if cred != nil {
			fmt.Fprintf(w, "# AuthenticationCredential (user %s) is not exported: put the password in a\n", cred.UserName)
			fmt.Fprintf(w, "# file and run this line to add it back.\n")
			fmt.Fprintf(w, "# Set-SendConnector %s -SmartHostAuthMechanism %s -AuthUsername %s -AuthPasswordFile PASSWORD-FILE\n",
				psQuote(c.Name), c.SmartHostAuthMechanism, psQuote(cred.UserName))
		}
		for _, l := range permissionLines(c.Name, defaultACL, acls[i]) {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

// newConnectorLine writes New-SendConnector with every property that
// differs from a new connector's. The credential and the authentication
// mechanism that needs it are left out and returned.
func newConnectorLine(app *App, c connector.SendConnector) (string, *connector.Credential, error) {
	var spaces []string
	for _, as := range c.AddressSpaces {
		spaces = append(spaces, as.String())
	}
	var base connector.Patch
	base.Name = connector.Some(c.Name)
	if p, ok := connector.LookupProperty("AddressSpaces"); ok {
		if err := p.Set(&base, strings.Join(spaces, ",")); err != nil {
			return "", nil, err
		}
	}
	baseline, _, err := connector.New(app.defaults(), connector.UsageCustom, base)
	if err != nil {
		return "", nil, err
	}
	cred := c.AuthenticationCredential
	parts := []string{"New-SendConnector", "-Name", psQuote(c.Name), "-AddressSpaces", psList(spaces)}
	for _, p := range connector.Properties() {
		if !p.Settable() || p.NewOnly && p.Name == "Name" || p.Name == "Name" || p.Name == "AddressSpaces" {
			continue
		}
		if p.Name == "AuthenticationCredential" || cred != nil && p.Name == "SmartHostAuthMechanism" {
			continue
		}
		v, d := p.Get(&c), p.Get(&baseline)
		if sameValue(v, d) {
			continue
		}
		parts = append(parts, "-"+p.Name, psValue(v))
	}
	return strings.Join(parts, " "), cred, nil
}

func sameValue(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// psValue writes a property value as PowerShell would take it.
func psValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "$null"
	case bool:
		if x {
			return "$true"
		}
		return "$false"
	case int:
		return strconv.Itoa(x)
	case string:
		return psQuote(x)
	case []string:
		if len(x) == 0 {
			return "$null"
		}
		return psList(x)
	case json.Marshaler:
		b, err := x.MarshalJSON()
		if err == nil {
			var s string
			if json.Unmarshal(b, &s) == nil {
				return psQuote(s)
			}
			return string(b)
		}
	}
	return psQuote(fmt.Sprint(v))
}

func psList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = psQuote(x)
	}
	return strings.Join(q, ",")
}

// psQuote single-quotes a string (no expansion in PowerShell) unless it
// is a plain word.
func psQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:*@", r)) {
			plain = false
			break
		}
	}
	if plain && !strings.HasPrefix(s, "-") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// permissionLines are the Add- and Remove-ADPermission lines that turn
// the default access list into acl: per principal, the allow rights added
// and removed, and the deny entries.
func permissionLines(name string, def, acl permissions.ACL) []string {
	type key struct {
		user string
		deny bool
	}
	rightsOf := func(a permissions.ACL) (map[key]permissions.Rights, []key) {
		m := map[key]permissions.Rights{}
		var order []key
		for _, e := range a {
			if e.IsInherited {
				continue
			}
			k := key{e.User.String(), e.Deny}
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] |= e.Rights()
		}
		return m, order
	}
	want, order := rightsOf(acl)
	have, defOrder := rightsOf(def)
	var lines []string
	for _, k := range defOrder {
		if gone := have[k] &^ want[k]; gone != 0 {
			lines = append(lines, fmt.Sprintf("Remove-ADPermission -Identity %s -User %s -ExtendedRights %s -Confirm:$false",
				psQuote(name), psQuote(k.user), psList(gone.Names())))
		}
	}
	for _, k := range order {
		if added := want[k] &^ have[k]; added != 0 {
			deny := ""
			if k.deny {
				deny = " -Deny"
			}
			lines = append(lines, fmt.Sprintf("Add-ADPermission -Identity %s -User %s -ExtendedRights %s%s",
				psQuote(name), psQuote(k.user), psList(added.Names()), deny))
		}
	}
	return lines
}
