// Command verihook is a self-hosted hub for identity-verification (KYC/KYB)
// webhooks. Run `verihook --help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/fractal"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/provider/identomat"
	"github.com/verihook/verihook/internal/provider/kycaid"
)

const usage = `verihook: a self-hosted hub for identity-verification (KYC/KYB) webhooks.
It receives and authenticates the callbacks of Identomat, iDenfy, KYCAID and
Fractal ID, stores them durably, and keeps a correct current status for every
verification.

Usage:
  verihook init [--providers idenfy,…] [--url https://HOST]
                                                  write a first config and an admin token; say
                                                  what to paste in each provider's dashboard
  verihook doctor [flags]                         check the config, store, key, secrets, endpoints
                                                  and clock, one line each
  verihook serve [flags]                          run the service (default: embedded SQLite in
                                                  ./verihook-data, listening on 127.0.0.1:8080)
  verihook token create --role admin|viewer [--name N] [--expires 90d]
                                                  create an API token; printed once
  verihook token list | token revoke ID           list the tokens; revoke one
  verihook migrate [flags]                        apply database migrations and exit
  verihook simulate PROVIDER EVENT --to URL --secret S [fields]
                                                  send a provider's callback, signed as it signs it
  verihook simulate PROVIDER --list               list a provider's events
  verihook simulate PROVIDER --scenario FILE      play a sequence (duplicates, reordering)
  verihook simulate serve --secret S [--listen A] emulate the providers' status APIs; send their callbacks
  verihook listen --secret whsec_… [--port 9000]  a local endpoint that verifies and prints deliveries
  verihook reconcile --source S [--all]           ask the provider about stuck verifications now
  verihook reprocess [--source S | --message ID]  re-run today's adapters over quarantined messages
  verihook backup FILE                            copy the SQLite database while serve runs
  verihook rotate-key [--finish]                  start (or end) an encryption key rotation
  verihook version                                print the version

Getting started:
  1. verihook init --providers idenfy --url https://YOUR-HOST
     writes verihook.yaml (one source per provider, secrets as ${VAR}), prints an
     admin token, and says where each provider's callback URL and secret go
  2. export IDENFY_SIGNING_KEY='…' (the secret from the provider's dashboard);
     verihook doctor --config verihook.yaml checks everything
  3. verihook serve --config verihook.yaml (HTTPS and proxies: README.md, Production)
  4. Try it offline:
       verihook simulate idenfy IDENTIFICATION_AUTO_FINISHED \
         --to http://127.0.0.1:8080/ingest/idenfy-main --secret "$IDENFY_SIGNING_KEY"
  5. verihook token create --role viewer --config verihook.yaml, then
       curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/v1/verifications
  6. Deliver events to your backend: declare an endpoint in verihook.yaml
       endpoints: [{id: backoffice, url: "https://backoffice.example/hooks", event_types: ["verification.*"]}]
     and verify its signatures (Standard Webhooks); 'verihook listen' shows what arrives.

Run 'verihook COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stdin: os.Stdin, terminal: isTerminal(os.Stdin)}
	os.Exit(runEnv(ctx, e, os.Args[1:]))
}

// isTerminal reports whether f is a terminal, where init asks questions.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// registry returns every provider verihook knows.
func registry() provider.Registry {
	return provider.NewRegistry(identomat.New(), idenfy.New(), kycaid.New(), fractal.New())
}

// env carries what a subcommand reads from the outside world, so that tests
// can run subcommands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdin is read only when terminal is set (init's questions).
	stdin    io.Reader
	terminal bool
}

// run runs one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runEnv(ctx, env{stdout: stdout, stderr: stderr, getenv: getenv}, args)
}

// runEnv runs one subcommand in e and returns the process exit code.
func runEnv(ctx context.Context, e env, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, env, []string) error{
		"init":       runInit,
		"doctor":     runDoctor,
		"serve":      runServe,
		"token":      runToken,
		"migrate":    runMigrate,
		"simulate":   runSimulate,
		"listen":     runListen,
		"rotate-key": runRotateKey,
		"backup":     runBackup,
		"reconcile":  runReconcile,
		"reprocess":  runReprocess,
		"version": func(context.Context, env, []string) error {
			fmt.Fprintln(stdout, versionLine())
			return nil
		},
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "verihook: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd(ctx, e, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "verihook %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage means the command line was wrong and the flag package has said so.
var errUsage = errors.New("usage")

// newFlagSet returns a flag set that reports its errors on e.stderr.
func newFlagSet(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: verihook %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping flag errors to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
