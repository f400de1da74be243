package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// serviceAccountSecrets is podspec's CredentialSource on the API server:
// a ServiceAccount and the Secrets it lists, read straight from the API
// server (never cached, so never held beyond the Pod's build), as Tekton's
// credsInit reads them. A listed Secret that does not exist is left out.
// Of a Secret's data only whether known_hosts is there is kept.
type serviceAccountSecrets struct{ reader client.Reader }

func (s serviceAccountSecrets) ServiceAccountSecrets(ctx context.Context, namespace, name string) ([]*corev1.Secret, error) {
	sa := &corev1.ServiceAccount{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sa); err != nil {
		return nil, fmt.Errorf("get ServiceAccount: %w", err)
	}
	var out []*corev1.Secret
	seen := map[string]bool{}
	for _, ref := range sa.Secrets {
		if ref.Name == "" || seen[ref.Name] {
			continue
		}
		seen[ref.Name] = true
		secret := &corev1.Secret{}
		err := s.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, secret)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get Secret %q: %w", ref.Name, err)
		}
		out = append(out, withoutValues(secret))
	}
	return out, nil
}

// withoutValues is a Secret's name, type and annotations, and its data's
// known_hosts key with no value (the one key Tekton's check asks about).
func withoutValues(s *corev1.Secret) *corev1.Secret {
	out := &corev1.Secret{Type: s.Type}
	out.Name, out.Namespace, out.Annotations = s.Name, s.Namespace, s.Annotations
	if _, ok := s.Data["known_hosts"]; ok {
		out.Data = map[string][]byte{"known_hosts": nil}
	}
	return out
}
