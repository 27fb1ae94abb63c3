package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit may be set at build time with
// -ldflags "-X main.version=1.2.0 -X main.commit=…"; left empty, they come
// from what the Go toolchain records in the binary: the module's version
// (a tag, or a pseudo-version) and the VCS revision it was built from.
var version, commit string

func init() { version, commit = buildVersion(version, commit, debug.ReadBuildInfo) }

// buildVersion returns the version and commit: those set with -ldflags,
// else the build info's ("dev" and "" without any). A commit built from a
// work tree with changes ends in "+dirty".
func buildVersion(ver, rev string, read func() (*debug.BuildInfo, bool)) (string, string) {
	info, ok := read()
	if ok && ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		ver = info.Main.Version
	}
	if ok && rev == "" {
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && dirty {
			rev += "+dirty"
		}
	}
	if ver == "" {
		ver = "dev"
	}
	return ver, rev
}

// versionLine is what verihook version prints.
func versionLine() string {
	c := commit
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("verihook %s (commit %s, %s, %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
