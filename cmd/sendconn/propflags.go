package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sendconn/sendconn/pkg/connector"
)

// rawValue records what a property flag was given; parsing happens later,
// all flags at once, so every bad value is reported in one run.
type rawValue struct {
	values []string
	syntax string
	isBool bool
}

func (v *rawValue) String() string {
	if len(v.values) == 0 {
		return ""
	}
	return v.values[len(v.values)-1]
}

func (v *rawValue) Set(s string) error {
	v.values = append(v.values, s)
	return nil
}

func (v *rawValue) Type() string {
	if v.isBool {
		return "bool"
	}
	return v.syntax
}

// propertyFlag ties one flag to one property operation.
type propertyFlag struct {
	prop  connector.Property
	op    string // "set", "add" or "remove"
	value *rawValue
}

// propertyFlags are the flags a command builds from connector.Properties.
type propertyFlags struct {
	flags []propertyFlag
}

// addPropertyFlags defines a flag for every settable property; with deltas,
// list properties also get --add-… and --remove-….
func addPropertyFlags(fs *pflag.FlagSet, deltas bool) *propertyFlags {
	pf := &propertyFlags{}
	for _, p := range connector.Properties() {
		if !p.Settable() {
			continue
		}
		pf.define(fs, p, "set", p.Flag, p.Name, p.Help)
		if deltas && p.List {
			pf.define(fs, p, "add", "add-"+p.Flag, "", "add entries to "+p.Name+" (keeps the others)")
			pf.define(fs, p, "remove", "remove-"+p.Flag, "", "remove entries from "+p.Name)
		}
	}
	return pf
}

func (pf *propertyFlags) define(fs *pflag.FlagSet, p connector.Property, op, name, psName, help string) {
	v := &rawValue{syntax: p.Syntax, isBool: p.Bool}
	fs.Var(v, name, help)
	f := fs.Lookup(name)
	if p.Bool {
		f.NoOptDefVal = "true"
	}
	annotate(f, syntaxAnnotation, p.Syntax)
	if psName != "" {
		annotate(f, psNameAnnotation, psName)
	}
	pf.flags = append(pf.flags, propertyFlag{prop: p, op: op, value: v})
}

// patch parses every given flag into a Patch, reporting all bad values.
func (pf *propertyFlags) patch() (connector.Patch, error) {
	var p connector.Patch
	var problems []*connector.PropertyError
	for _, f := range pf.flags {
		for _, raw := range f.value.values {
			var err error
			switch f.op {
			case "set":
				err = f.prop.Set(&p, raw)
			case "add":
				err = f.prop.Add(&p, raw)
			case "remove":
				err = f.prop.Remove(&p, raw)
			}
			var ve *connector.ValidationError
			if errors.As(err, &ve) {
				problems = append(problems, ve.Problems...)
			} else if err != nil {
				return p, err
			}
		}
	}
	if len(problems) > 0 {
		return p, &connector.ValidationError{Problems: problems}
	}
	return p, nil
}

// credentialOptions are the ways to give AuthenticationCredential. The
// password is never a flag value: flags end up in shell history and in ps.
type credentialOptions struct {
	username      string
	passwordFile  string
	passwordStdin bool
	// rejected spellings, kept so that they fail with a useful message
	plainPassword string
	psCredential  string
}

const passwordEnv = "SENDCONN_AUTH_PASSWORD"

func addCredentialFlags(fs *pflag.FlagSet, o *credentialOptions) {
	fs.StringVar(&o.username, "auth-username", "", "user name for BasicAuth/BasicAuthRequireTLS (empty removes the credential); the password comes from --auth-password-file, --auth-password-stdin or $"+passwordEnv)
	fs.StringVar(&o.passwordFile, "auth-password-file", "", "read the credential's password from this file (first line)")
	fs.BoolVar(&o.passwordStdin, "auth-password-stdin", false, "read the credential's password from standard input")
	annotate(fs.Lookup("auth-username"), psNameAnnotation, "AuthenticationCredential")
	annotate(fs.Lookup("auth-username"), syntaxAnnotation, "user")
	annotate(fs.Lookup("auth-password-file"), syntaxAnnotation, "file")
	fs.StringVar(&o.plainPassword, "auth-password", "", "")
	fs.StringVar(&o.psCredential, "authentication-credential", "", "")
	_ = fs.MarkHidden("auth-password")
	_ = fs.MarkHidden("authentication-credential")
}

var errNoCredentialChange = errors.New("no credential change")

// resolve returns the credential to store. existing is the connector's
// current credential (nil on new); a password source without
// --auth-username keeps the existing user name, and a new user name without
// a password source keeps the existing password.
func (o *credentialOptions) resolve(fs *pflag.FlagSet, in io.Reader, stdinUsed bool, getenv func(string) string, existing *connector.Credential) (*connector.Credential, error) {
	if fs.Changed("auth-password") {
		return nil, &usageError{msg: "passwords are not accepted as flag values (they would show in shell history and ps)",
			hint: "use --auth-password-file FILE, --auth-password-stdin, or $" + passwordEnv}
	}
	if fs.Changed("authentication-credential") {
		return nil, &usageError{msg: "-AuthenticationCredential takes a PSCredential, which a shell cannot pass",
			hint: "use --auth-username USER with --auth-password-file FILE, --auth-password-stdin, or $" + passwordEnv}
	}
	userGiven := fs.Changed("auth-username")
	sources := 0
	if o.passwordFile != "" {
		sources++
	}
	if o.passwordStdin {
		sources++
	}
	if sources > 1 {
		return nil, usageErrorf("give the password once: --auth-password-file or --auth-password-stdin")
	}
	if !userGiven && sources == 0 {
		return nil, errNoCredentialChange
	}
	if userGiven && o.username == "" {
		if sources > 0 {
			return nil, usageErrorf("an empty --auth-username removes the credential; it takes no password")
		}
		return nil, nil
	}
	var password *connector.Secret
	switch {
	case o.passwordFile != "":
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		s := connector.NewSecret(firstLine(string(b)))
		password = &s
	case o.passwordStdin:
		if stdinUsed {
			return nil, usageErrorf("standard input is already used for identities (\"-\"); use --auth-password-file")
		}
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("read password from standard input: %w", err)
		}
		s := connector.NewSecret(firstLine(string(b)))
		password = &s
	case userGiven && getenv(passwordEnv) != "":
		s := connector.NewSecret(getenv(passwordEnv))
		password = &s
	}
	if password != nil && !password.IsSet() {
		return nil, usageErrorf("the password is empty")
	}
	cred := &connector.Credential{}
	if existing != nil {
		*cred = *existing
	}
	if userGiven {
		cred.UserName = o.username
	} else if existing == nil {
		return nil, usageErrorf("a password needs --auth-username")
	}
	if password != nil {
		cred.Password = *password
	}
	return cred, nil
}

// firstLine drops what follows the first line break: a password file's
// trailing newline is not part of the password.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
