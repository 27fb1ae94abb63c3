package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

const tokenUsage = `Usage:
  verihook token create --role admin|viewer [--name NAME] [--expires 90d] [flags]
  verihook token list [flags]
  verihook token revoke ID [flags]`

// runToken creates, lists and revokes API tokens in the configured store.
func runToken(ctx context.Context, e env, args []string) error {
	sub := map[string]func(context.Context, env, []string) error{
		"create": runTokenCreate,
		"list":   runTokenList,
		"revoke": runTokenRevoke,
	}
	if len(args) == 0 || sub[args[0]] == nil {
		fmt.Fprintln(e.stderr, tokenUsage)
		return errUsage
	}
	return sub[args[0]](ctx, e, args[1:])
}

// openFlagStore opens the store that the parsed common flags of fs name.
func openFlagStore(ctx context.Context, e env, fs *flag.FlagSet, common commonFlags) (hub.Store, error) {
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return nil, err
	}
	return openStore(ctx, cfg, e.getenv, newLogger(e.stderr, cfg.LogLevel))
}

// runTokenCreate prints the new token alone on the last line of standard
// output (SPEC section 2), so scripts can take it with tail -n 1.
func runTokenCreate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token create", "token create --role admin|viewer [--name NAME] [--expires 90d] [flags]")
	common := addCommonFlags(fs)
	role := fs.String("role", "", "admin (configure, replay, tokens) or viewer (read only)")
	name := fs.String("name", "", "a label for the token, shown by token list")
	expires := fs.String("expires", "", "lifetime, such as 12h, 90d or 2w (default: never expires)")
	if err := parse(fs, args); err != nil {
		return err
	}
	r := hub.Role(*role)
	if r != hub.RoleAdmin && r != hub.RoleViewer {
		return errors.New("--role: want admin or viewer")
	}
	var lifetime time.Duration
	if *expires != "" {
		var err error
		if lifetime, err = hub.ParseLifetime(*expires); err != nil {
			return fmt.Errorf("--expires: %s", hub.ErrorMessage(err))
		}
	}
	store, err := openFlagStore(ctx, e, fs, common)
	if err != nil {
		return err
	}
	defer store.Close()
	tok, secret := hub.NewToken(r, *name, lifetime, time.Now().UTC())
	if err := store.CreateToken(ctx, tok); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	until := "never expires"
	if !tok.ExpiresAt.IsZero() {
		until = "expires " + tok.ExpiresAt.Format(time.RFC3339)
	}
	fmt.Fprintf(e.stderr, "Created %s token %s (%s). It is shown once; only its hash is stored.\n", r, tok.ID, until)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

// runTokenList prints every token, revoked and expired ones included, as a
// table; never a secret or a hash.
func runTokenList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token list", "token list [flags]")
	common := addCommonFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	store, err := openFlagStore(ctx, e, fs, common)
	if err != nil {
		return err
	}
	defer store.Close()
	toks, err := store.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, orDash(t.Name), t.Role, t.State(now),
			when(t.CreatedAt), when(t.ExpiresAt), when(t.LastUsedAt))
	}
	return tw.Flush()
}

// orDash shows an empty value as "-", so the table's columns stay aligned.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// when shows a time to the minute in UTC, or "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

// runTokenRevoke revokes one token by id; it is refused from then on, on
// every instance, and stays listed.
func runTokenRevoke(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "token revoke", "token revoke ID [flags]")
	common := addCommonFlags(fs)
	// The id may come before the flags as well as after them.
	var ids []string
	for {
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		ids, args = append(ids, fs.Arg(0)), fs.Args()[1:]
	}
	if len(ids) != 1 {
		fmt.Fprintln(e.stderr, "Usage: verihook token revoke ID [flags] (the ids are in: verihook token list)")
		return errUsage
	}
	store, err := openFlagStore(ctx, e, fs, common)
	if err != nil {
		return err
	}
	defer store.Close()
	tok, err := store.RevokeToken(ctx, ids[0], time.Now().UTC())
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	fmt.Fprintf(e.stdout, "Token %s (%s, %s) is revoked since %s.\n", tok.ID, orDash(tok.Name), tok.Role, tok.RevokedAt.UTC().Format(time.RFC3339))
	return nil
}
