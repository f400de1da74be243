//go:build !inpod

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	clientset "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resource"
	hubresolution "github.com/tektoncd/pipeline/pkg/resolution/resolver/hub"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/resolve"
)

// requester answers the run's resolver references in-process with Tekton's
// resolvers. The resolvers' ConfigMaps (git-resolver-config, …) and the
// Secrets they read (a git token, http basic auth) come from the documents;
// with a kubeconfig the Secrets come from that cluster, which also serves
// the cluster resolver.
// A document that names no namespace is in the run's, as compile has it.
func requester(ctx context.Context, docs []load.Doc, namespace, kubeconfig string) (*resolve.Requester, error) {
	for _, d := range docs {
		if m, ok := d.Object.(metav1.Object); ok && (d.Kind == load.KindPipelineRun || d.Kind == load.KindTaskRun) && m.GetNamespace() != "" {
			namespace = m.GetNamespace()
		}
	}
	opts := resolve.Options{
		Configs:        map[string]map[string]string{},
		ArtifactHubURL: hubURL("ARTIFACT_HUB_API", hubresolution.DefaultArtifactHubURL),
		TektonHubURL:   hubURL("TEKTON_HUB_API", ""),
		FileURLs:       true,
	}
	var secrets []runtime.Object
	for _, d := range docs {
		switch obj := d.Object.(type) {
		case *corev1.ConfigMap:
			opts.Configs[obj.Name] = obj.Data
		case *corev1.Secret:
			// stringData is write-only: the API server merges it into data.
			s := obj.DeepCopy()
			for k, v := range s.StringData {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				s.Data[k] = []byte(v)
			}
			s.StringData = nil
			if s.Namespace == "" {
				s.Namespace = namespace
			}
			secrets = append(secrets, s)
		}
	}
	if kubeconfig == "" {
		opts.Kube = fake.NewClientset(secrets...)
		return resolve.New(ctx, opts)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	if opts.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	if opts.Tekton, err = clientset.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return resolve.New(ctx, opts)
}

// hubURL is a hub's URL as the resolvers deployment reads it: its
// environment variable, without a trailing slash, or def.
func hubURL(env, def string) string {
	if u := strings.TrimSuffix(os.Getenv(env), "/"); u != "" {
		return u
	}
	return def
}

// lazyRequester makes the requester when a run first needs it: Tekton's
// resolvers (and the clients they read Secrets with) cost more to set up
// than a run that refers to nothing remote takes in all.
type lazyRequester struct {
	make func() (*resolve.Requester, error)
	once sync.Once
	r    *resolve.Requester
	err  error
}

func (l *lazyRequester) Submit(ctx context.Context, name resource.ResolverName, req resource.Request) (resource.ResolvedResource, error) {
	l.once.Do(func() { l.r, l.err = l.make() })
	if l.err != nil {
		return nil, l.err
	}
	return l.r.Submit(ctx, name, req)
}
