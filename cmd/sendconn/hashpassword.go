package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

func newHashPasswordCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Print the bcrypt hash of a password, for receive.users",
		Long: `Read a password and print its bcrypt hash, the form receive.users keeps
(password-hash), so that the configuration file never holds the password
itself. On a terminal it asks twice without echoing; otherwise it reads the
first line of standard input. The password is never an argument: arguments
are visible to every user in the process list.`,
		Example: `  sendconn hash-password
  printf '%s\n' "$APP_PASSWORD" | sendconn hash-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readNewPassword(app)
			if err != nil {
				return err
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			if err != nil {
				return fmt.Errorf("hash the password: %w", err)
			}
			_, err = fmt.Fprintln(app.IO.Out, string(hash))
			return err
		},
	}
	markNoConfig(cmd)
	return cmd
}

// readNewPassword asks twice on a terminal, or reads standard input's
// first line.
func readNewPassword(app *App) (string, error) {
	if in, ok := app.IO.In.(*os.File); ok && app.IO.StdinTTY && term.IsTerminal(int(in.Fd())) {
		ask := func(prompt string) (string, error) {
			fmt.Fprint(app.IO.ErrOut, prompt)
			pw, err := term.ReadPassword(int(in.Fd()))
			fmt.Fprintln(app.IO.ErrOut)
			return string(pw), err
		}
		pw, err := ask("Password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		again, err := ask("Again: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if pw != again {
			return "", errors.New("the passwords differ")
		}
		return checkNewPassword(pw)
	}
	line, err := bufio.NewReader(app.IO.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return checkNewPassword(strings.TrimRight(line, "\r\n"))
}

func checkNewPassword(pw string) (string, error) {
	switch {
	case pw == "":
		return "", usageErrorf("the password is empty")
	case len(pw) > 72:
		// bcrypt looks at 72 bytes and refuses more.
		return "", usageErrorf("the password is longer than 72 bytes, which bcrypt cannot hash")
	}
	return pw, nil
}
