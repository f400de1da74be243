package admission

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certLifetime is how long the serving certificate and its CA are valid:
// they are made again at every start, so a long-running controller is the
// only one that needs it long.
const certLifetime = 10 * 365 * 24 * time.Hour

// keptCAs is how many CAs the webhook configuration's caBundle keeps: each
// replica makes its own at start and adds it, so that every replica's
// certificate verifies while the oldest ones drop out.
const keptCAs = 4

// Bootstrap makes a self-signed CA and a serving certificate it signs for
// hosts (DNS names or IP addresses), writes the certificate and key as
// tls.crt and tls.key in dir (where the webhook server reads them), and
// returns the CA in PEM for the webhook configuration's caBundle. Nothing
// is kept but the files: no Secret is read or written.
func Bootstrap(dir string, hosts []string, now time.Time) (caPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webhook CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "pod-runner webhook CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("webhook CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "pod-runner webhook"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// InjectCABundle adds caPEM to the caBundle of every webhook of the
// MutatingWebhookConfiguration called name that lacks it, keeping the
// keptCAs newest, so that the API server trusts this process's
// certificate; a webhook that has it is left alone. A write that lost a
// race with another replica's is made again.
func InjectCABundle(ctx context.Context, c client.Client, name string, caPEM []byte) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, cfg); err != nil {
			return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", name, err)
		}
		patch := client.MergeFromWithOptions(cfg.DeepCopy(), client.MergeFromWithOptimisticLock{})
		changed := false
		for i := range cfg.Webhooks {
			if b := cfg.Webhooks[i].ClientConfig.CABundle; !bytes.Contains(b, caPEM) {
				cfg.Webhooks[i].ClientConfig.CABundle, changed = appendCA(b, caPEM), true
			}
		}
		if !changed {
			return nil
		}
		return c.Patch(ctx, cfg, patch)
	})
	if err != nil {
		return fmt.Errorf("the caBundle of MutatingWebhookConfiguration %s: %w", name, err)
	}
	return nil
}

// KeepCABundle runs InjectCABundle every period until ctx ends: the CA
// comes back if the configuration was replaced, or if other replicas'
// starts pushed it out of the newest keptCAs. Errors are reported, and
// tried again next period.
func KeepCABundle(ctx context.Context, c client.Client, name string, caPEM []byte, period time.Duration, report func(error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := InjectCABundle(ctx, c, name, caPEM); err != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}

// appendCA is bundle with ca last, the oldest dropped past keptCAs, and
// anything in it that is not a certificate dropped.
func appendCA(bundle, ca []byte) []byte {
	var certs [][]byte
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certs = append(certs, pem.EncodeToMemory(b))
		}
	}
	certs = append(certs, ca)
	if len(certs) > keptCAs {
		certs = certs[len(certs)-keptCAs:]
	}
	return bytes.Join(certs, nil)
}
