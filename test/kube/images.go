package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// MapImages rewrites, as Pods are created in the namespaces labelled
// selector (key=value), each container's image to what mapImage gives
// ("" keeps it), pulled IfNotPresent: the cluster has no registry, so the
// images that Tekton's tests and examples name are stood in for by ones
// this machine built. It is a mutating admission webhook served from the
// test process, registered until t ends; failurePolicy Fail, so that no
// Pod is created unmapped.
func MapImages(t testing.TB, name, selector string, mapImage func(string) string) {
	t.Helper()
	key, val, ok := strings.Cut(selector, "=")
	if !ok {
		t.Fatalf("MapImages: selector %q is not key=value", selector)
	}
	cert, certPEM := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/pods", func(w http.ResponseWriter, r *http.Request) { mapPodImages(w, r, mapImage) })
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	Kubectl(t, fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: %s}
webhooks:
- name: images.pod-runner.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  namespaceSelector:
    matchLabels: {%s: %q}
  rules:
  - {apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE], scope: Namespaced}
  clientConfig:
    url: https://%s/pods
    caBundle: %s
`, name, key, val, ln.Addr(), base64.StdEncoding.EncodeToString(certPEM)), "apply", "-f", "-")
	t.Cleanup(func() { Kubectl(t, "", "delete", "mutatingwebhookconfiguration", name, "--ignore-not-found") })
}

// mapPodImages answers one AdmissionReview with a JSON patch.
func mapPodImages(w http.ResponseWriter, r *http.Request, mapImage func(string) string) {
	review := &admissionv1.AdmissionReview{}
	if err := json.NewDecoder(r.Body).Decode(review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(review.Request.Object.Raw, pod); err == nil {
		var ops []map[string]any
		for field, cs := range map[string][]corev1.Container{"initContainers": pod.Spec.InitContainers, "containers": pod.Spec.Containers} {
			for i, c := range cs {
				if img := mapImage(c.Image); img != "" && img != c.Image {
					at := fmt.Sprintf("/spec/%s/%d/", field, i)
					ops = append(ops, map[string]any{"op": "add", "path": at + "image", "value": img},
						map[string]any{"op": "add", "path": at + "imagePullPolicy", "value": string(corev1.PullIfNotPresent)})
				}
			}
		}
		if len(ops) > 0 {
			patch, _ := json.Marshal(ops)
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
		}
	}
	review.Response, review.Request = resp, nil
	_ = json.NewEncoder(w).Encode(review)
}

// selfSigned is a certificate for 127.0.0.1 that is its own CA.
func selfSigned(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
