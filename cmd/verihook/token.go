package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

func runToken(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(e.stderr, "Usage: verihook token create --role admin|viewer [--name NAME] [--config FILE]")
		return errUsage
	}
	fs := newFlagSet(e, "token create", "token create --role admin|viewer [flags]")
	common := addCommonFlags(fs)
	role := fs.String("role", "", "admin (configure, replay, tokens) or viewer (read only)")
	name := fs.String("name", "", "a label for the token")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	r := hub.Role(*role)
	if r != hub.RoleAdmin && r != hub.RoleViewer {
		return errors.New("--role: want admin or viewer")
	}
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, e.getenv, newLogger(e.stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer store.Close()
	secret := hub.NewTokenSecret()
	now := time.Now().UTC()
	tok := hub.Token{ID: hub.NewID("tok", now), Name: *name, Role: r, Hash: hub.HashToken(secret), CreatedAt: now}
	if err := store.CreateToken(ctx, tok); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	fmt.Fprintf(e.stderr, "Created %s token %s. It is shown once; only its hash is stored.\n", r, tok.ID)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "migrate", "migrate [flags]")
	common := addCommonFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, e.getenv, newLogger(e.stderr, cfg.LogLevel)) // opening applies the migrations
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "database is up to date")
	return store.Close()
}
