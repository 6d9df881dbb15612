package permissions

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const contosoExchangeServers Principal = `CONTOSO\Exchange Servers`

var (
	routing       = RightsOf(SendHeadersRouting)
	routingExch50 = RightsOf(SendHeadersRouting, SMTPSendExch50)
)

// allow and deny build explicit entries the way extended rights create them.
func allow(p Principal, rs Rights) ACE {
	return ACE{User: p, AccessRights: ExtendedRight, ExtendedRights: rs}
}

func deny(p Principal, rs Rights) ACE {
	return ACE{User: p, AccessRights: ExtendedRight, ExtendedRights: rs, Deny: true}
}

func inherited(e ACE) ACE {
	e.IsInherited = true
	return e
}

func withInheritance(e ACE, t InheritanceType) ACE {
	e.InheritanceType = t
	return e
}

func without(a ACL, p Principal) ACL {
	return slices.DeleteFunc(slices.Clone(a), func(e ACE) bool { return e.User.Equal(p) })
}

func formatACL(a ACL) string {
	var b strings.Builder
	for _, e := range a {
		fmt.Fprintf(&b, "\n\t{User:%q AccessRights:[%v] ExtendedRights:[%v] Deny:%v IsInherited:%v InheritanceType:%v}",
			e.User, e.AccessRights, e.ExtendedRights, e.Deny, e.IsInherited, e.InheritanceType)
	}
	return b.String()
}

func TestDefaultACL(t *testing.T) {
	want := ACL{
		allow(AnonymousLogon, routing),
		allow(PartnerServers, routing),
		allow(LegacyExchangeServers, routingExch50),
		allow(ExternallySecuredServers, routingExch50),
		allow(HubTransportServers, AllRights),
		allow(EdgeTransportServers, AllRights),
		allow(contosoExchangeServers, AllRights),
	}
	got := DefaultACL("CONTOSO")
	if !slices.Equal(got, want) {
		t.Fatalf("DefaultACL = %s\nwant %s", formatACL(got), formatACL(want))
	}
	for _, e := range got {
		if e.AccessRights != ExtendedRight || e.InheritanceType != InheritanceNone || e.IsInherited || e.Deny {
			t.Errorf("default entry for %s is not an explicit ExtendedRight allow with inheritance None: %+v", e.User, e)
		}
	}
}

func TestEffective(t *testing.T) {
	defaults := DefaultACL("CONTOSO")
	tests := []struct {
		name string
		acl  ACL
		user Principal
		want Rights
	}{
		{"default anonymous", defaults, AnonymousLogon, routing},
		{"default partner", defaults, PartnerServers, routing},
		{"default legacy", defaults, LegacyExchangeServers, routingExch50},
		{"default externally secured", defaults, ExternallySecuredServers, routingExch50},
		{"default hub", defaults, HubTransportServers, AllRights},
		{"default edge", defaults, EdgeTransportServers, AllRights},
		{"default exchange servers", defaults, contosoExchangeServers, AllRights},
		{"user compared without case", defaults, `contoso\exchange servers`, AllRights},
		{"other organization's servers", defaults, `FABRIKAM\Exchange Servers`, 0},
		{"unknown principal", defaults, `relay@contoso.com`, 0},
		{"empty list", nil, AnonymousLogon, 0},
		{
			"deny beats allow listed after it",
			ACL{allow(AnonymousLogon, routing), deny(AnonymousLogon, routing)},
			AnonymousLogon, 0,
		},
		{
			"deny removes only what it names",
			ACL{allow(HubTransportServers, AllRights), deny(HubTransportServers, RightsOf(SendHeadersOrganization))},
			HubTransportServers, AllRights &^ RightsOf(SendHeadersOrganization),
		},
		{
			"inherited deny beats explicit allow",
			ACL{allow(PartnerServers, routingExch50), inherited(deny(PartnerServers, routing))},
			PartnerServers, RightsOf(SMTPSendExch50),
		},
		{
			"inherited allow adds",
			ACL{allow(PartnerServers, routing), inherited(allow(PartnerServers, RightsOf(SendHeadersForest)))},
			PartnerServers, RightsOf(SendHeadersRouting, SendHeadersForest),
		},
		{
			"deny for another user does not matter",
			ACL{allow(PartnerServers, routing), deny(AnonymousLogon, routing)},
			PartnerServers, routing,
		},
		{
			"ExtendedRight naming no right covers all",
			ACL{{User: `CONTOSO\relay`, AccessRights: ExtendedRight}},
			`CONTOSO\relay`, AllRights,
		},
		{
			"GenericAll covers all",
			ACL{{User: `CONTOSO\relay`, AccessRights: GenericAll}},
			`CONTOSO\relay`, AllRights,
		},
		{
			"other access rights grant no extended right",
			ACL{{User: `CONTOSO\relay`, AccessRights: GenericRead | GenericWrite}},
			`CONTOSO\relay`, 0,
		},
		{
			"deny naming no right denies all",
			ACL{allow(HubTransportServers, AllRights), {User: HubTransportServers, AccessRights: ExtendedRight, Deny: true}},
			HubTransportServers, 0,
		},
		{
			"inheritance All and SelfAndChildren apply to the connector",
			ACL{withInheritance(allow(PartnerServers, routing), InheritanceAll),
				withInheritance(allow(PartnerServers, RightsOf(SendHeadersForest)), InheritanceSelfAndChildren)},
			PartnerServers, RightsOf(SendHeadersRouting, SendHeadersForest),
		},
		{
			"inherit-only entries do not apply to the connector",
			ACL{withInheritance(allow(PartnerServers, routing), InheritanceDescendents),
				withInheritance(allow(PartnerServers, RightsOf(SendHeadersForest)), InheritanceChildren),
				withInheritance(deny(HubTransportServers, AllRights), InheritanceChildren),
				allow(HubTransportServers, AllRights)},
			PartnerServers, 0,
		},
		{
			"inherit-only deny does not deny",
			ACL{withInheritance(deny(HubTransportServers, AllRights), InheritanceDescendents), allow(HubTransportServers, AllRights)},
			HubTransportServers, AllRights,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.acl.Effective(tt.user); got != tt.want {
				t.Errorf("Effective(%s) = [%v], want [%v]", tt.user, got, tt.want)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	in := ACL{
		inherited(allow("D\\ia1", routing)),
		allow("D\\ea1", routing),
		inherited(deny("D\\id1", routing)),
		deny("D\\ed1", routing),
		allow("D\\ea2", routing),
		inherited(allow("D\\ia2", routing)),
		deny("D\\ed2", routing),
		inherited(deny("D\\id2", routing)),
	}
	orig := slices.Clone(in)
	var got []Principal
	for _, e := range in.Canonical() {
		got = append(got, e.User)
	}
	want := []Principal{"D\\ed1", "D\\ed2", "D\\ea1", "D\\ea2", "D\\id1", "D\\id2", "D\\ia1", "D\\ia2"}
	if !slices.Equal(got, want) {
		t.Errorf("Canonical order = %q, want %q", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Error("Canonical reordered its receiver")
	}
}

func TestAdd(t *testing.T) {
	defaults := DefaultACL("CONTOSO")
	tests := []struct {
		name      string
		acl       ACL
		add       ACE
		want      ACL
		wantAdded Rights
		wantErr   string
	}{
		{
			name:      "already present: nothing added, nothing changed",
			acl:       defaults,
			add:       ACE{User: AnonymousLogon, ExtendedRights: routing},
			want:      defaults,
			wantAdded: 0,
		},
		{
			name:      "already present, user in another case",
			acl:       defaults,
			add:       ACE{User: `ms exchange\hub transport servers`, AccessRights: ExtendedRight, ExtendedRights: RightsOf(SMTPSendXShadow)},
			want:      defaults,
			wantAdded: 0,
		},
		{
			name: "organization for externally secured servers merges into its entry",
			acl:  defaults,
			add:  ACE{User: ExternallySecuredServers, ExtendedRights: RightsOf(SendHeadersOrganization)},
			want: ACL{
				defaults[0], defaults[1], defaults[2],
				allow(ExternallySecuredServers, RightsOf(SendHeadersRouting, SendHeadersOrganization, SMTPSendExch50)),
				defaults[4], defaults[5], defaults[6],
			},
			wantAdded: RightsOf(SendHeadersOrganization),
		},
		{
			name: "merge keeps the stored spelling of the user and adds only what is new",
			acl:  defaults,
			add:  ACE{User: `nt authority\anonymous logon`, ExtendedRights: RightsOf(SendHeadersRouting, SendHeadersForest)},
			want: ACL{
				allow(AnonymousLogon, RightsOf(SendHeadersRouting, SendHeadersForest)),
				defaults[1], defaults[2], defaults[3], defaults[4], defaults[5], defaults[6],
			},
			wantAdded: RightsOf(SendHeadersForest),
		},
		{
			name:      "another inheritance type is another entry",
			acl:       defaults,
			add:       ACE{User: ExternallySecuredServers, ExtendedRights: RightsOf(SendHeadersOrganization), InheritanceType: InheritanceAll},
			want:      append(slices.Clone(defaults), withInheritance(allow(ExternallySecuredServers, RightsOf(SendHeadersOrganization)), InheritanceAll)),
			wantAdded: RightsOf(SendHeadersOrganization),
		},
		{
			name:      "undo of the removal recipe",
			acl:       without(defaults, AnonymousLogon),
			add:       ACE{User: AnonymousLogon, ExtendedRights: routing, InheritanceType: InheritanceAll},
			want:      append(without(defaults, AnonymousLogon), withInheritance(allow(AnonymousLogon, routing), InheritanceAll)),
			wantAdded: routing,
		},
		{
			name:      "deny entry goes first",
			acl:       defaults,
			add:       ACE{User: AnonymousLogon, ExtendedRights: routing, Deny: true, InheritanceType: InheritanceAll},
			want:      append(ACL{withInheritance(deny(AnonymousLogon, routing), InheritanceAll)}, defaults...),
			wantAdded: routing,
		},
		{
			name:      "deny already present",
			acl:       ACL{deny(AnonymousLogon, routing), allow(AnonymousLogon, routing)},
			add:       ACE{User: AnonymousLogon, ExtendedRights: routing, Deny: true},
			want:      ACL{deny(AnonymousLogon, routing), allow(AnonymousLogon, routing)},
			wantAdded: 0,
		},
		{
			name:      "extended rights imply ExtendedRight next to other access rights",
			acl:       nil,
			add:       ACE{User: `CONTOSO\relay`, AccessRights: ReadProperty, ExtendedRights: routing},
			want:      ACL{{User: `CONTOSO\relay`, AccessRights: ReadProperty | ExtendedRight, ExtendedRights: routing}},
			wantAdded: routing,
		},
		{
			name:      "GenericAll grants every right",
			acl:       nil,
			add:       ACE{User: `relay@contoso.com`, AccessRights: GenericAll},
			want:      ACL{{User: `relay@contoso.com`, AccessRights: GenericAll}},
			wantAdded: AllRights,
		},
		{
			name:      "ExtendedRight naming no right widens a matching entry to all",
			acl:       defaults,
			add:       ACE{User: PartnerServers, AccessRights: ExtendedRight},
			want:      ACL{defaults[0], {User: PartnerServers, AccessRights: ExtendedRight}, defaults[2], defaults[3], defaults[4], defaults[5], defaults[6]},
			wantAdded: AllRights &^ routing,
		},
		{
			name:      "a right already covered by an entry naming none",
			acl:       ACL{{User: PartnerServers, AccessRights: ExtendedRight}},
			add:       ACE{User: PartnerServers, ExtendedRights: RightsOf(SendHeadersForest)},
			want:      ACL{{User: PartnerServers, AccessRights: ExtendedRight}},
			wantAdded: 0,
		},
		{
			name:      "inherited entries are not merged into",
			acl:       ACL{inherited(allow(PartnerServers, routing))},
			add:       ACE{User: PartnerServers, ExtendedRights: routing},
			want:      ACL{allow(PartnerServers, routing), inherited(allow(PartnerServers, routing))},
			wantAdded: routing,
		},
		{
			name:    "inherited entry",
			acl:     defaults,
			add:     ACE{User: AnonymousLogon, ExtendedRights: routing, IsInherited: true},
			wantErr: "inherited entries come from the organization",
		},
		{
			name:    "no user",
			acl:     defaults,
			add:     ACE{User: " ", ExtendedRights: routing},
			wantErr: "no user given",
		},
		{
			name:    "neither access nor extended rights",
			acl:     defaults,
			add:     ACE{User: AnonymousLogon, Deny: true},
			wantErr: "must specify either access or extended rights",
		},
		{
			name:    "bits that are no right",
			acl:     defaults,
			add:     ACE{User: AnonymousLogon, ExtendedRights: 0x40},
			wantErr: "unknown extended rights 0x40",
		},
		{
			name:    "inheritance type out of range",
			acl:     defaults,
			add:     ACE{User: AnonymousLogon, ExtendedRights: routing, InheritanceType: 9},
			wantErr: "unknown inheritance type 9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := slices.Clone(tt.acl)
			got, added, err := tt.acl.Add(tt.add)
			if !slices.Equal(tt.acl, orig) {
				t.Fatal("Add modified its receiver")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if added != tt.wantAdded {
				t.Errorf("added = [%v], want [%v]", added, tt.wantAdded)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ACL = %s\nwant %s", formatACL(got), formatACL(tt.want))
			}
		})
	}
}

func TestRemove(t *testing.T) {
	defaults := DefaultACL("CONTOSO")
	genericAll := ACE{User: `CONTOSO\relay`, AccessRights: GenericAll}
	tests := []struct {
		name        string
		acl         ACL
		remove      ACE
		want        ACL
		wantRemoved Rights
		wantErr     error
		wantErrText string
	}{
		{
			name:        "recipe: routing from anonymous",
			acl:         defaults,
			remove:      ACE{User: AnonymousLogon, ExtendedRights: routing},
			want:        without(defaults, AnonymousLogon),
			wantRemoved: routing,
		},
		{
			name: "recipe as typed: AccessRights ExtendedRight, inheritance as the command defaults it, user in lower case",
			acl:  defaults,
			remove: ACE{User: `nt authority\anonymous logon`, AccessRights: ExtendedRight,
				ExtendedRights: routing, InheritanceType: InheritanceAll},
			want:        without(defaults, AnonymousLogon),
			wantRemoved: routing,
		},
		{
			name:        "absent right: nothing removed",
			acl:         defaults,
			remove:      ACE{User: AnonymousLogon, ExtendedRights: RightsOf(SendHeadersOrganization)},
			want:        defaults,
			wantRemoved: 0,
		},
		{
			name:        "absent user: nothing removed",
			acl:         defaults,
			remove:      ACE{User: `CONTOSO\nobody`, ExtendedRights: routing},
			want:        defaults,
			wantRemoved: 0,
		},
		{
			name:        "allow removal leaves deny entries alone",
			acl:         ACL{deny(AnonymousLogon, routing)},
			remove:      ACE{User: AnonymousLogon, ExtendedRights: routing},
			want:        ACL{deny(AnonymousLogon, routing)},
			wantRemoved: 0,
		},
		{
			name:        "deny removal",
			acl:         append(ACL{deny(AnonymousLogon, routing)}, defaults...),
			remove:      ACE{User: AnonymousLogon, ExtendedRights: routing, Deny: true},
			want:        defaults,
			wantRemoved: routing,
		},
		{
			name:   "one right out of two",
			acl:    defaults,
			remove: ACE{User: LegacyExchangeServers, ExtendedRights: RightsOf(SMTPSendExch50, SendHeadersForest)},
			want: ACL{defaults[0], defaults[1], allow(LegacyExchangeServers, routing),
				defaults[3], defaults[4], defaults[5], defaults[6]},
			wantRemoved: RightsOf(SMTPSendExch50),
		},
		{
			name:        "other AccessRights do not match",
			acl:         defaults,
			remove:      ACE{User: AnonymousLogon, AccessRights: GenericAll, ExtendedRights: routing},
			want:        defaults,
			wantRemoved: 0,
		},
		{
			name:        "whole entries when no extended right is named",
			acl:         defaults,
			remove:      ACE{User: HubTransportServers, AccessRights: ExtendedRight},
			want:        without(defaults, HubTransportServers),
			wantRemoved: AllRights,
		},
		{
			name: "every explicit entry of the user, whatever its inheritance",
			acl: ACL{allow(PartnerServers, routing), withInheritance(allow(PartnerServers, RightsOf(SendHeadersForest)), InheritanceAll),
				allow(AnonymousLogon, routing)},
			remove:      ACE{User: PartnerServers, ExtendedRights: AllRights},
			want:        ACL{allow(AnonymousLogon, routing)},
			wantRemoved: RightsOf(SendHeadersRouting, SendHeadersForest),
		},
		{
			name:        "an entry naming no right keeps the others",
			acl:         ACL{{User: PartnerServers, AccessRights: ExtendedRight}},
			remove:      ACE{User: PartnerServers, ExtendedRights: routing},
			want:        ACL{allow(PartnerServers, AllRights&^routing)},
			wantRemoved: routing,
		},
		{
			name:        "GenericAll loses a named right",
			acl:         ACL{genericAll},
			remove:      ACE{User: `CONTOSO\relay`, ExtendedRights: routing},
			want:        ACL{{User: `CONTOSO\relay`, AccessRights: GenericAll, ExtendedRights: AllRights &^ routing}},
			wantRemoved: routing,
		},
		{
			name:        "GenericAll losing every right keeps its other access rights",
			acl:         ACL{genericAll},
			remove:      ACE{User: `CONTOSO\relay`, ExtendedRights: AllRights},
			want:        ACL{{User: `CONTOSO\relay`, AccessRights: GenericAll &^ ExtendedRight}},
			wantRemoved: AllRights,
		},
		{
			name:        "an entry with other access rights stays when its last right goes",
			acl:         ACL{{User: `CONTOSO\relay`, AccessRights: ReadProperty | ExtendedRight, ExtendedRights: routing}},
			remove:      ACE{User: `CONTOSO\relay`, ExtendedRights: routing},
			want:        ACL{{User: `CONTOSO\relay`, AccessRights: ReadProperty}},
			wantRemoved: routing,
		},
		{
			name:        "access rights only: whole entry, no extended right removed",
			acl:         ACL{{User: `CONTOSO\relay`, AccessRights: ReadProperty}, allow(AnonymousLogon, routing)},
			remove:      ACE{User: `CONTOSO\relay`, AccessRights: ReadProperty},
			want:        ACL{allow(AnonymousLogon, routing)},
			wantRemoved: 0,
		},
		{
			name:        "inherited entries stay when explicit ones match",
			acl:         ACL{allow(AnonymousLogon, routing), inherited(allow(AnonymousLogon, routing))},
			remove:      ACE{User: AnonymousLogon, ExtendedRights: routing},
			want:        ACL{inherited(allow(AnonymousLogon, routing))},
			wantRemoved: routing,
		},
		{
			name:    "only inherited entries match",
			acl:     ACL{allow(PartnerServers, routing), inherited(allow(AnonymousLogon, routing))},
			remove:  ACE{User: AnonymousLogon, ExtendedRights: routing},
			wantErr: ErrInheritedEntry,
			wantErrText: `inherited entries cannot be removed: the entry for "NT AUTHORITY\ANONYMOUS LOGON" ` +
				`comes from the organization; change it there`,
		},
		{
			name:    "only an inherited entry carries the right",
			acl:     ACL{allow(AnonymousLogon, RightsOf(SendHeadersForest)), inherited(allow(AnonymousLogon, routing))},
			remove:  ACE{User: AnonymousLogon, ExtendedRights: routing},
			wantErr: ErrInheritedEntry,
		},
		{
			name:        "an inherited entry without the right is no reason to fail",
			acl:         ACL{inherited(allow(AnonymousLogon, RightsOf(SendHeadersForest)))},
			remove:      ACE{User: AnonymousLogon, ExtendedRights: routing},
			want:        ACL{inherited(allow(AnonymousLogon, RightsOf(SendHeadersForest)))},
			wantRemoved: 0,
		},
		{
			name:        "no user",
			acl:         defaults,
			remove:      ACE{ExtendedRights: routing},
			wantErrText: "no user given",
		},
		{
			name:        "neither access nor extended rights",
			acl:         defaults,
			remove:      ACE{User: AnonymousLogon},
			wantErrText: "must specify either access or extended rights",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := slices.Clone(tt.acl)
			got, removed, err := tt.acl.Remove(tt.remove)
			if !slices.Equal(tt.acl, orig) {
				t.Fatal("Remove modified its receiver")
			}
			if tt.wantErr != nil || tt.wantErrText != "" {
				if err == nil {
					t.Fatalf("no error, want %v %q", tt.wantErr, tt.wantErrText)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error = %v, want it to wrap %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErrText) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if removed != tt.wantRemoved {
				t.Errorf("removed = [%v], want [%v]", removed, tt.wantRemoved)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ACL = %s\nwant %s", formatACL(got), formatACL(tt.want))
			}
		})
	}
}

// The recipes of the specification, end to end: each one changes what the
// principal holds exactly as the admin expects.
func TestRecipes(t *testing.T) {
	defaults := DefaultACL("CONTOSO")

	t.Run("remove routing from anonymous", func(t *testing.T) {
		acl, removed, err := defaults.Remove(ACE{User: AnonymousLogon, ExtendedRights: routing})
		if err != nil || removed != routing {
			t.Fatalf("Remove = [%v], %v", removed, err)
		}
		if got := acl.Effective(AnonymousLogon); got != 0 {
			t.Errorf("anonymous holds [%v], want nothing", got)
		}
		if got := acl.ForUser(AnonymousLogon); len(got) != 0 {
			t.Errorf("entries left for anonymous: %s", formatACL(got))
		}
		if got := acl.Effective(PartnerServers); got != routing {
			t.Errorf("partner servers hold [%v], want [%v]", got, routing)
		}

		again, removed, err := acl.Remove(ACE{User: AnonymousLogon, ExtendedRights: routing})
		if err != nil || removed != 0 || !slices.Equal(again, acl) {
			t.Errorf("second removal = [%v], %v; want nothing removed", removed, err)
		}

		undone, added, err := acl.Add(ACE{User: AnonymousLogon, ExtendedRights: routing, InheritanceType: DefaultInheritance})
		if err != nil || added != routing || undone.Effective(AnonymousLogon) != routing {
			t.Errorf("undo = [%v], %v; anonymous holds [%v]", added, err, undone.Effective(AnonymousLogon))
		}
	})

	t.Run("deny routing to anonymous", func(t *testing.T) {
		acl, added, err := defaults.Add(ACE{User: AnonymousLogon, ExtendedRights: routing, Deny: true, InheritanceType: DefaultInheritance})
		if err != nil || added != routing {
			t.Fatalf("Add = [%v], %v", added, err)
		}
		if got := acl.Effective(AnonymousLogon); got.Has(SendHeadersRouting) {
			t.Errorf("anonymous holds [%v], want no routing", got)
		}
		entries := acl.ForUser(AnonymousLogon)
		if len(entries) != 2 || !entries[0].Deny || entries[1].Deny {
			t.Errorf("want the deny entry, then the allow entry that remains: %s", formatACL(entries))
		}
	})

	t.Run("organization headers to a trusted partner", func(t *testing.T) {
		acl, added, err := defaults.Add(ACE{User: ExternallySecuredServers,
			ExtendedRights: RightsOf(SendHeadersOrganization), InheritanceType: DefaultInheritance})
		if err != nil || added != RightsOf(SendHeadersOrganization) {
			t.Fatalf("Add = [%v], %v", added, err)
		}
		want := RightsOf(SendHeadersRouting, SMTPSendExch50, SendHeadersOrganization)
		if got := acl.Effective(ExternallySecuredServers); got != want {
			t.Errorf("externally secured servers hold [%v], want [%v]", got, want)
		}
	})
}

// Add and Remove must not write into spare capacity of the receiver's
// backing array: a caller may hold another slice of it.
func TestAddRemoveLeaveBackingArrayAlone(t *testing.T) {
	backing := make(ACL, 2, 8)
	copy(backing, ACL{allow(AnonymousLogon, routing), deny(PartnerServers, routing)})
	snapshot := slices.Clone(backing[:cap(backing)])

	if _, _, err := backing.Add(allow(HubTransportServers, AllRights)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := backing.Remove(ACE{User: AnonymousLogon, ExtendedRights: routing}); err != nil {
		t.Fatal(err)
	}
	_ = backing.Canonical()
	_ = backing.ForUser("")
	if !slices.Equal(backing[:cap(backing)], snapshot) {
		t.Error("the backing array changed")
	}
}

func TestForUser(t *testing.T) {
	acl := append(DefaultACL("CONTOSO"), deny(AnonymousLogon, routing), inherited(allow(`nt authority\ANONYMOUS logon`, RightsOf(SendHeadersForest))))
	if got := acl.ForUser(""); !slices.Equal(got, acl) {
		t.Errorf("ForUser(\"\") = %s", formatACL(got))
	}
	got := acl.ForUser(`Nt Authority\Anonymous Logon`)
	want := ACL{acl[0], acl[7], acl[8]}
	if !slices.Equal(got, want) {
		t.Errorf("ForUser = %s\nwant %s", formatACL(got), formatACL(want))
	}
	if got := acl.ForUser(`CONTOSO\nobody`); len(got) != 0 {
		t.Errorf("ForUser(nobody) = %s", formatACL(got))
	}
}

func TestInheritanceType(t *testing.T) {
	for i, name := range []string{"None", "All", "Descendents", "SelfAndChildren", "Children"} {
		it := InheritanceType(i)
		if it.String() != name {
			t.Errorf("InheritanceType(%d).String() = %q, want %q", i, it, name)
		}
		for _, spelling := range []string{name, strings.ToUpper(name), " " + strings.ToLower(name) + " "} {
			if got, err := ParseInheritanceType(spelling); err != nil || got != it {
				t.Errorf("ParseInheritanceType(%q) = %v, %v; want %v", spelling, got, err, it)
			}
		}
		b, err := json.Marshal(it)
		if err != nil || string(b) != `"`+name+`"` {
			t.Errorf("Marshal(%v) = %s, %v", it, b, err)
		}
	}
	if got, want := InheritanceType(7).String(), "InheritanceType(7)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := json.Marshal(InheritanceType(7)); err == nil {
		t.Error("Marshal of an invalid value succeeded")
	}
	_, err := ParseInheritanceType("Descendants")
	if err == nil || err.Error() != `unknown inheritance type "Descendants" (valid: None, All, Descendents, SelfAndChildren, Children)` {
		t.Errorf("ParseInheritanceType(Descendants) error = %v", err)
	}
	var it InheritanceType
	if err := json.Unmarshal([]byte(`"selfandchildren"`), &it); err != nil || it != InheritanceSelfAndChildren {
		t.Errorf("Unmarshal = %v, %v", it, err)
	}
	if err := json.Unmarshal([]byte(`2`), &it); err == nil {
		t.Error("Unmarshal of a number succeeded")
	}
}

func TestACEJSON(t *testing.T) {
	e := ACE{User: ExternallySecuredServers, AccessRights: ExtendedRight,
		ExtendedRights: RightsOf(SendHeadersRouting, SMTPSendExch50), InheritanceType: InheritanceAll}
	const want = `{"User":"MS Exchange\\Externally Secured Servers","AccessRights":["ExtendedRight"],` +
		`"ExtendedRights":["ms-Exch-Send-Headers-Routing","ms-Exch-SMTP-Send-Exch50"],` +
		`"Deny":false,"IsInherited":false,"InheritanceType":"All"}`
	b, err := json.Marshal(e)
	if err != nil || string(b) != want {
		t.Fatalf("Marshal = %s, %v\nwant %s", b, err, want)
	}
	var back ACE
	if err := json.Unmarshal(b, &back); err != nil || back != e {
		t.Errorf("Unmarshal = %+v, %v; want %+v", back, err, e)
	}

	var acl ACL
	if err := json.Unmarshal([]byte(`[{"User":"MS Exchange\\Partner Servers","ExtendedRights":["MS-EXCH-SEND-HEADERS-ROUTING"],"Deny":true}]`), &acl); err != nil {
		t.Fatal(err)
	}
	if want := (ACL{{User: PartnerServers, ExtendedRights: routing, Deny: true}}); !slices.Equal(acl, want) {
		t.Errorf("Unmarshal = %s, want %s", formatACL(acl), formatACL(want))
	}
}
