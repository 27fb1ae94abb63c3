package storetest

import (
	"bytes"
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// testCertCache: the ACME cache keeps values by key, replaces them, and
// answers ENOTFOUND for what it does not hold.
func testCertCache(t *testing.T, s hub.Store) {
	_, err := s.CertCache(ctx(t), "kyc.example.com")
	wantCode(t, "CertCache(missing)", err, hub.ENOTFOUND)
	for _, v := range [][]byte{[]byte("-----BEGIN EC PRIVATE KEY-----\nfirst"), []byte("second")} {
		if err := s.PutCertCache(ctx(t), "kyc.example.com", v); err != nil {
			t.Fatalf("PutCertCache = %v", err)
		}
		if got, err := s.CertCache(ctx(t), "kyc.example.com"); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("CertCache = %q, %v; want %q", got, err, v)
		}
	}
	if err := s.PutCertCache(ctx(t), "acme_account+key", []byte("account")); err != nil {
		t.Fatalf("PutCertCache(account) = %v", err)
	}
	if err := s.DeleteCertCache(ctx(t), "kyc.example.com"); err != nil {
		t.Fatalf("DeleteCertCache = %v", err)
	}
	_, err = s.CertCache(ctx(t), "kyc.example.com")
	wantCode(t, "CertCache(deleted)", err, hub.ENOTFOUND)
	if got, err := s.CertCache(ctx(t), "acme_account+key"); err != nil || string(got) != "account" {
		t.Errorf("CertCache(another key) after a delete = %q, %v", got, err)
	}
	if err := s.DeleteCertCache(ctx(t), "unknown"); err != nil {
		t.Errorf("DeleteCertCache(unknown) = %v; want nil", err)
	}
}
