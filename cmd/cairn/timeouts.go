package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/transport"
)

// timeoutFlags adds --connect-timeout and --stall-timeout to every
// command. A flag given sets its environment variable, which every
// client reads (transport.Current) and child processes inherit; a bad
// value, from either, is a usage error before anything runs.
func timeoutFlags(root *cobra.Command) {
	var connect, stall time.Duration
	root.PersistentFlags().DurationVar(&connect, "connect-timeout", 0,
		fmt.Sprintf("how long a connection to a server may take (default $%s, else %v)", transport.EnvConnect, transport.DefaultConnect))
	root.PersistentFlags().DurationVar(&stall, "stall-timeout", 0,
		fmt.Sprintf("cut a transfer that moves less than %d bytes/s for this long, and try the next mirror (default $%s, else %v)", transport.DefaultLowSpeed, transport.EnvStall, transport.DefaultStall))
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		for _, f := range []struct {
			name, env string
			d         time.Duration
		}{{"connect-timeout", transport.EnvConnect, connect}, {"stall-timeout", transport.EnvStall, stall}} {
			if !cmd.Flags().Changed(f.name) {
				continue
			}
			if f.d <= 0 {
				return usageError{fmt.Errorf("--%s %v: want a positive duration, like 30s", f.name, f.d)}
			}
			os.Setenv(f.env, f.d.String())
		}
		if _, err := transport.FromEnv(); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// isTimeout says a server or mirror did not connect, or stalled.
func isTimeout(err error) bool { return errors.Is(err, transport.ErrTimeout) }

const timeoutHint = "the server named did not connect or stopped sending: try again, or another mirror; --connect-timeout and --stall-timeout (or " +
	transport.EnvConnect + ", " + transport.EnvStall + ") set how long cairn waits"
