package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

// describeGroups prints groups and unroutable recipients in one string, so
// a table can state the whole expected split.
func describeGroups(groups []Group, unroutable []Unroutable) string {
	var parts []string
	for _, g := range groups {
		hop := g.Connector.Name
		if g.Domain != "" {
			hop += "/" + g.Domain
		}
		parts = append(parts, hop+": "+strings.Join(g.Recipients, " "))
	}
	for _, u := range unroutable {
		parts = append(parts, "!"+u.Recipient+": "+u.Route.Outcome.String()+" "+u.Route.Reason)
	}
	return strings.Join(parts, " | ")
}

func TestBifurcate(t *testing.T) {
	conns := []connector.SendConnector{
		conn("Partner", "fabrikam.com", smartHosts(relayHost)),
		conn("Contoso", "*.contoso.com", smartHosts(relayIP)),
		conn("Internet", "*"),
		conn("Small", "tailspintoys.com", maxSize(kb)),
	}
	ix := mustIndex(t, conns, nil)
	for _, tc := range []struct {
		name  string
		rcpts []string
		size  int64
		want  string
	}{
		{"nothing", nil, 1, ""},
		{"one recipient", []string{"a@fabrikam.com"}, 1, "Partner: a@fabrikam.com"},
		{"interleaved, order kept inside groups",
			[]string{"a@fabrikam.com", "b@sales.contoso.com", "c@FABRIKAM.com", "d@contoso.com", "e@fabrikam.com"}, 1,
			"Partner: a@fabrikam.com c@FABRIKAM.com e@fabrikam.com | Contoso: b@sales.contoso.com d@contoso.com"},
		{"a smart-host connector is one hop whatever the domains",
			[]string{"a@contoso.com", "b@x.contoso.com", "c@y.contoso.com"}, 1,
			"Contoso: a@contoso.com b@x.contoso.com c@y.contoso.com"},
		{"a DNS connector is one hop per domain",
			[]string{"a@northwind.example", "b@adatum.example", "c@Northwind.Example", "d@adatum.example"}, 1,
			"Internet/northwind.example: a@northwind.example c@Northwind.Example | Internet/adatum.example: b@adatum.example d@adatum.example"},
		{"unroutable kept apart, in order",
			[]string{"bad", "a@fabrikam.com", "b@tailspintoys.com", "c@"}, 1,
			"Partner: a@fabrikam.com | Small/tailspintoys.com: b@tailspintoys.com | !bad: Rejected ROUTING.InvalidAddress | !c@: Rejected ROUTING.InvalidAddress"},
		{"too large for one connector, another level takes it",
			[]string{"a@tailspintoys.com", "b@fabrikam.com"}, 2 * kb,
			"Internet/tailspintoys.com: a@tailspintoys.com | Partner: b@fabrikam.com"},
		{"DNS hops are keyed by the normalized domain",
			[]string{"a@ü.example", "b@xn--tda.example", "c@Ü.EXAMPLE"}, 1,
			"Internet/xn--tda.example: a@ü.example b@xn--tda.example c@Ü.EXAMPLE"},
		{"duplicates kept as given",
			[]string{"a@fabrikam.com", "a@fabrikam.com"}, 1, "Partner: a@fabrikam.com a@fabrikam.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeGroups(ix.Bifurcate(tc.rcpts, tc.size)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBifurcateUnreachableAndTooLarge(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{conn("Small", "contoso.com", maxSize(kb))}, nil)
	got := describeGroups(ix.Bifurcate([]string{"a@contoso.com", "b@fabrikam.com", "c@contoso.com"}, 2*kb))
	want := "!a@contoso.com: Rejected ROUTING.SizeLimit | !b@fabrikam.com: Unreachable QUEUE.Expired | !c@contoso.com: Rejected ROUTING.SizeLimit"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestBifurcateGroupFields(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{
		conn("Multi", "contoso.com;4, *.contoso.com;2", sources("EX02")),
	}, nil)
	groups, _ := ix.Bifurcate([]string{"a@sales.contoso.com", "b@contoso.com"}, 1)
	if len(groups) != 2 {
		t.Fatalf("want one group per DNS domain, got %s", describeGroups(groups, nil))
	}
	if g := groups[0]; g.AddressSpace.String() != "SMTP:*.contoso.com;2" || g.Proximity != LocalSite || g.Domain != "sales.contoso.com" {
		t.Errorf("first group: %+v", g)
	}
	if g := groups[1]; g.AddressSpace.String() != "SMTP:contoso.com;4" || g.Domain != "contoso.com" {
		t.Errorf("second group: %+v", g)
	}
	if groups[0].Connector != groups[1].Connector {
		t.Errorf("the groups of one connector point to different copies")
	}
}

// Groups share one backing array; appending to one must not overwrite the
// next group's recipients.
func TestBifurcateGroupsDoNotAlias(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{
		conn("A", "a.example", smartHosts(relayHost)), conn("B", "b.example", smartHosts(relayHost)),
	}, nil)
	groups, _ := ix.Bifurcate([]string{"x@a.example", "y@b.example"}, 1)
	if len(groups) != 2 {
		t.Fatalf("got %s", describeGroups(groups, nil))
	}
	_ = append(groups[0].Recipients, "intruder@a.example")
	if !slices.Equal(groups[1].Recipients, []string{"y@b.example"}) {
		t.Errorf("appending to one group changed another: %v", groups[1].Recipients)
	}
}

// Many next hops switch the group lookup from a scan to a map; the split
// must not change, and recipients beyond the small-message buffer must all
// be placed.
func TestBifurcateManyHops(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{conn("Internet", "*")}, nil)
	var rcpts []string
	for i := range 300 {
		rcpts = append(rcpts, fmt.Sprintf("u%d@d%d.example", i, i%37))
	}
	groups, unroutable := ix.Bifurcate(rcpts, 1)
	if len(groups) != 37 || len(unroutable) != 0 {
		t.Fatalf("got %d groups, %d unroutable", len(groups), len(unroutable))
	}
	seen := 0
	for gi, g := range groups {
		if g.Domain != fmt.Sprintf("d%d.example", gi) {
			t.Errorf("group %d is %s, want groups in order of first recipient", gi, g.Domain)
		}
		for j, r := range g.Recipients {
			if want := fmt.Sprintf("u%d@d%d.example", gi+37*j, gi); r != want {
				t.Errorf("group %d recipient %d = %s, want %s", gi, j, r, want)
			}
		}
		seen += len(g.Recipients)
	}
	if seen != len(rcpts) {
		t.Errorf("placed %d of %d recipients", seen, len(rcpts))
	}
}
