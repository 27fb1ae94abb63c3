package main

import (
	"runtime/debug"
	"testing"
)

// TestBuildVersion: -ldflags win; otherwise the module version and the VCS
// revision recorded by the toolchain, marked dirty when the tree had changes.
func TestBuildVersion(t *testing.T) {
	t.Parallel()
	info := func(modVersion string, settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: modVersion}}
			for i := 0; i < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, c := range []struct {
		name             string
		ldVer, ldCommit  string
		read             func() (*debug.BuildInfo, bool)
		wantVer, wantRev string
	}{
		{"no build info", "", "", none, "dev", ""},
		{"a go run", "", "", info("(devel)"), "dev", ""},
		{"tagged, clean", "", "", info("v1.2.0", "vcs.revision", "abc123", "vcs.modified", "false"), "v1.2.0", "abc123"},
		{"pseudo-version, dirty", "", "", info("v0.0.0-20261129020000-abc123def456+dirty", "vcs.revision", "abc123def456", "vcs.modified", "true"),
			"v0.0.0-20261129020000-abc123def456+dirty", "abc123def456+dirty"},
		{"ldflags win", "1.4.0", "feedbeef", info("v1.2.0", "vcs.revision", "abc123"), "1.4.0", "feedbeef"},
		{"ldflags version, commit from vcs", "1.4.0", "", info("(devel)", "vcs.revision", "abc123"), "1.4.0", "abc123"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ver, rev := buildVersion(c.ldVer, c.ldCommit, c.read)
			if ver != c.wantVer || rev != c.wantRev {
				t.Errorf("buildVersion = %q, %q; want %q, %q", ver, rev, c.wantVer, c.wantRev)
			}
		})
	}
}
