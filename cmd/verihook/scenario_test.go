package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// playScenario writes a scenario file and plays it with the simulate command.
func playScenario(t *testing.T, scenario string, wantExit int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(scenario), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--scenario", path}, &out, &errOut, os.Getenv); code != wantExit {
		t.Fatalf("simulate --scenario: exit %d, want %d\n%s%s", code, wantExit, out.String(), errOut.String())
	}
	return out.String()
}

func TestScenarioOrdering(t *testing.T) {
	t.Parallel()
	m := startMain(t, testConfig(t))
	base := "http://" + m.Addr()
	tok := token(t, m, hub.RoleViewer)

	out := playScenario(t, `provider: fractal
to: `+base+`/ingest/fractal-main
secret: `+testSecrets["fractal"]+`
steps:
  - {event: verification_approved, ref: user-1, level: basic, time: "2026-11-24T12:05:00Z"}
  - {event: verification_rejected, ref: user-1, level: basic, time: "2026-11-24T12:00:00Z"}
  - {resend: 1}
  - {event: verification_approved, ref: user-1, level: liveness, copies: 2}
`, 0)
	if n := strings.Count(out, `"duplicate":true`); n != 2 {
		t.Errorf("scenario answers show %d duplicates, want 2 (the resend and the second copy):\n%s", n, out)
	}
	basic := verificationOf(t, base, tok, "fractal-main", "user-1", "basic")
	if basic.Status != hub.StatusApproved || basic.Version != 1 || len(basic.Timeline) != 2 ||
		basic.Timeline[0].Outcome != hub.OutcomeApplied || basic.Timeline[1].Outcome != hub.OutcomeSuperseded {
		t.Errorf("fractal basic level: %+v", basic)
	}
	if live := verificationOf(t, base, tok, "fractal-main", "user-1", "liveness"); live.Status != hub.StatusApproved || len(live.Timeline) != 1 {
		t.Errorf("fractal liveness level: %+v", live)
	}

	playScenario(t, `provider: idenfy
to: `+base+`/ingest/idenfy-main
secret: `+testSecrets["idenfy"]+`
steps:
  - {event: IDENTIFICATION_MANUAL_FINISHED, ref: scan-1, applicant: user-42, status: APPROVED, time: "2026-11-24T12:00:00Z"}
  - {event: IDENTIFICATION_AUTO_FINISHED, ref: scan-1, final: "false", time: "2026-11-24T12:00:00Z"}
  - {event: IDENTIFICATION_AUTO_FINISHED, ref: scan-2, final: "false", status: DENIED, time: "2026-11-24T12:00:00Z"}
  - {event: IDENTIFICATION_MANUAL_FINISHED, ref: scan-2, status: SUSPECTED, reason: "FACE_IN_BLACKLIST", time: "2026-11-24T12:00:00Z"}
`, 0)
	late := verificationOf(t, base, tok, "idenfy-main", "scan-1", "")
	if late.Status != hub.StatusApproved || !late.Final || late.Version != 1 || late.ApplicantRef != "user-42" ||
		len(late.Timeline) != 2 || late.Timeline[1].Outcome != hub.OutcomeSuperseded {
		t.Errorf("iDenfy final then late preliminary: %+v", late)
	}
	inOrder := verificationOf(t, base, tok, "idenfy-main", "scan-2", "")
	if inOrder.Status != hub.StatusSuspected || !inOrder.Final || inOrder.Version != 2 || !containsString(inOrder.Reasons, "FACE_IN_BLACKLIST") {
		t.Errorf("iDenfy preliminary then final: %+v", inOrder)
	}

	playScenario(t, `provider: kycaid
to: `+base+`/ingest/kycaid-main
secret: `+testSecrets["kycaid"]+`
steps:
  - {event: VERIFICATION_COMPLETED, ref: kv-1, status: "false"}
  - {event: VERIFICATION_STATUS_CHANGED, ref: kv-1, status: pending}
  - {event: VERIFICATION_COMPLETED, ref: kv-1, status: "true"}
`, 0)
	// No attempts count is known, so the rejection is not final and the
	// next attempt applies (examples/kycaid-attempts.yaml has the counts).
	kv := verificationOf(t, base, tok, "kycaid-main", "kv-1", "")
	if kv.Status != hub.StatusApproved || kv.Version != 3 || len(kv.Timeline) != 3 || kv.Timeline[0].Final ||
		kv.Timeline[1].Outcome != hub.OutcomeApplied {
		t.Errorf("KYCAID rejected, next attempt pending, then approved: %+v", kv)
	}

	// A wrong secret: the server refuses, and simulate says so in its exit code.
	out = playScenario(t, `provider: identomat
to: `+base+`/ingest/identomat-main
secret: not-the-key
steps:
  - {event: session-change, ref: s-1, status: APPROVED}
`, 1)
	if !strings.Contains(out, "401") {
		t.Errorf("simulate with a wrong secret printed %q, want the 401", out)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
