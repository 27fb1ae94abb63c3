package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cmdDashboard times every page of the dashboard on a data dir (seed one
// first): it starts verihook on it, creates an admin token, logs in, and
// loads each page --requests times, one after the other, reporting the
// latency percentiles of each. The pages are the lists (first and second
// page), their filters, and one item of each list.
func cmdDashboard(ctx context.Context, args []string) error {
	fs := newFlagSet("dashboard")
	dataDir := fs.String("data-dir", "", "data dir to serve (seeded with verihook-bench seed)")
	database := fs.String("database", "", "postgres:// URL of the database (default: SQLite in the data dir)")
	bin := fs.String("bin", "", "verihook binary (default: go build ./cmd/verihook)")
	requests := fs.Int("requests", 200, "loads of each page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("dashboard: --data-dir is required")
	}
	if *bin == "" {
		tmp, err := os.MkdirTemp("", "verihook-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if *bin, err = buildVerihook(tmp); err != nil {
			return err
		}
	}
	o := serverOpts{bin: *bin, dataDir: *dataDir, database: *database}
	t, err := startVerihook(ctx, o)
	if err != nil {
		return err
	}
	defer t.close()

	// The token comes from the CLI on the same config, as an operator's.
	key, err := ensureKey(*dataDir)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(filepath.Dir(filepath.Clean(*dataDir)), filepath.Base(*dataDir)+"-bench.yaml")
	cmd := exec.CommandContext(ctx, *bin, "token", "create", "--role", "admin", "--name", "bench", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "VERIHOOK_ENCRYPTION_KEY="+key)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := c.PostForm(t.url+"/login", url.Values{"token": {token}})
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		return fmt.Errorf("log in: %d at %s", resp.StatusCode, resp.Request.URL)
	}

	pages, err := dashboardPages(ctx, t.url, token)
	if err != nil {
		return err
	}
	fmt.Printf("dashboard on %s, %d loads of each page, one at a time\n", *dataDir, *requests)
	var worst time.Duration
	for _, p := range pages {
		samples := make([]time.Duration, 0, *requests)
		for range *requests {
			if err := ctx.Err(); err != nil {
				return err
			}
			start := time.Now()
			resp, err := c.Get(t.url + p)
			if err != nil {
				return fmt.Errorf("GET %s: %w", p, err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %d %v", p, resp.StatusCode, err)
			}
			samples = append(samples, time.Since(start))
		}
		l := summarize(samples)
		worst = max(worst, l.P99)
		fmt.Printf("  %-60s p50 %8s  p99 %8s  max %8s\n", p, ms(l.P50), ms(l.P99), ms(l.Max))
	}
	fmt.Printf("slowest page p99: %s\n", ms(worst))
	return nil
}

// dashboardPages lists the pages to time: every list, its second page, its
// filters, and the first item of each list, found through the API.
func dashboardPages(ctx context.Context, base, token string) ([]string, error) {
	get := func(path string) (ids []string, next string, err error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		var l struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			return nil, "", fmt.Errorf("GET %s: %w", path, err)
		}
		for _, d := range l.Data {
			ids = append(ids, d.ID)
		}
		return ids, l.NextCursor, nil
	}
	pages := []string{"/", "/sources", "/endpoints", "/tokens",
		"/messages?status=quarantined", "/messages?status=rejected", "/messages?source=kycaid-main",
		"/verifications?status=approved", "/verifications?provider=kycaid", "/verifications?source=idenfy-main",
		// The level and provider filters; a filter that matches nothing reads
		// every row unless an index serves it.
		"/verifications?level=basic", "/verifications?level=nomatch", "/verifications?provider=nomatch",
		"/deliveries?status=failed", "/deliveries?status=succeeded"}
	for _, l := range []struct{ api, page string }{
		{"/api/v1/messages", "/messages"}, {"/api/v1/verifications", "/verifications"},
		{"/api/v1/deliveries", "/deliveries"},
	} {
		ids, next, err := get(l.api)
		if err != nil {
			return nil, err
		}
		pages = append(pages, l.page)
		if next != "" {
			pages = append(pages, l.page+"?cursor="+url.QueryEscape(next))
		}
		if len(ids) > 0 {
			pages = append(pages, l.page+"/"+url.PathEscape(ids[0]))
		}
	}
	// The applicant of the newest verification, and its reference.
	var v struct {
		Data []struct {
			ApplicantRef string `json:"applicant_ref"`
			ProviderRef  string `json:"provider_ref"`
		} `json:"data"`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/verifications?provider=kycaid&limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
	}
	if len(v.Data) > 0 {
		pages = append(pages, "/verifications?applicant_ref="+url.QueryEscape(v.Data[0].ApplicantRef),
			"/verifications?provider_ref="+url.QueryEscape(v.Data[0].ProviderRef))
	}
	return pages, nil
}
