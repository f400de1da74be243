package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	podpipeline "github.com/e7763abc/pod-runner/api/podpipeline/v1alpha1"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	resolutionv1beta1 "github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crevent "sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/e7763abc/pod-runner/internal/admission"
	"github.com/e7763abc/pod-runner/internal/podspec"
)

// PodLogs reads container logs through the API server's Pods/log.
type PodLogs struct{ Clientset kubernetes.Interface }

// Log opens the whole log of the container.
func (p PodLogs) Log(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	rc, err := p.Clientset.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("pods/log %s/%s -c %s: %w", namespace, pod, container, err)
	}
	return rc, nil
}

// Follow streams the container's log from its first line as it is written.
func (p PodLogs) Follow(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	rc, err := p.Clientset.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("pods/log %s/%s -c %s (follow): %w", namespace, pod, container, err)
	}
	return rc, nil
}

// SetupWithManager registers the reconciler: PipelineRuns delegated to
// pod-runner only (other runs never reach Reconcile), and the Pods and
// TaskRuns they own, so that a change to either brings their run back.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	managed := predicate.NewPredicateFuncs(func(o client.Object) bool {
		pr, ok := o.(*v1.PipelineRun)
		return ok && Managed(pr) && !ChildRun(pr)
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("pod-runner").
		For(&v1.PipelineRun{}, builder.WithPredicates(managed)).
		Owns(&corev1.Pod{}).
		// The run's TaskRuns name it as an owner but not as their
		// controller (delegatedOwner, status.go).
		Watches(&v1.TaskRun{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1.PipelineRun{})).
		// So do its ResolutionRequests (clusterRequester): an answer
		// brings the run back at once.
		Watches(&resolutionv1beta1.ResolutionRequest{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1.PipelineRun{}))
	b, err := r.followLogs(mgr, b)
	if err != nil {
		return err
	}
	return b.Complete(r)
}

// SetupWithManager registers the CustomRun reconciler: the CustomRuns of
// PodPipelines only, and the Pods and TaskRuns they own.
func (c *CustomRunReconciler) SetupWithManager(mgr ctrl.Manager) error {
	podPipelines := predicate.NewPredicateFuncs(func(o client.Object) bool {
		run, ok := o.(*v1beta1.CustomRun)
		return ok && podpipeline.IsPodPipeline(run)
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("pod-runner-customrun").
		For(&v1beta1.CustomRun{}, builder.WithPredicates(podPipelines)).
		Owns(&corev1.Pod{}).
		Owns(&v1.TaskRun{}).
		Watches(&resolutionv1beta1.ResolutionRequest{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1beta1.CustomRun{}))
	b, err := c.followLogs(mgr, b)
	if err != nil {
		return err
	}
	return b.Complete(c)
}

// followLogs has every event a running supervisor publishes wake the
// reconcile of the object the Pod runs for (follow.go), when Logs can
// follow; the poll stays the backstop.
func (r *Reconciler) followLogs(mgr ctrl.Manager, b *builder.Builder) (*builder.Builder, error) {
	if lf, ok := r.Logs.(LogFollower); ok {
		woken := make(chan crevent.TypedGenericEvent[types.NamespacedName], 1024)
		r.follow = &followers{logs: lf, notify: func(n types.NamespacedName) {
			select {
			case woken <- crevent.TypedGenericEvent[types.NamespacedName]{Object: n}:
			default: // a full queue wakes the run anyway; the poll is the backstop
			}
		}}
		b = b.WatchesRawSource(source.Channel(woken, handler.TypedEnqueueRequestsFromMapFunc(
			func(_ context.Context, n types.NamespacedName) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: n}}
			})))
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			r.follow.stopAll()
			return nil
		})); err != nil {
			return nil, fmt.Errorf("log followers: %w", err)
		}
	}
	return b, nil
}

// Config is what `injector controller` is started with.
type Config struct {
	// Namespace limits the controller to one namespace; all when empty.
	Namespace string
	Pod       podspec.Options
	// MetricsAddr serves Prometheus metrics; "0" turns them off.
	MetricsAddr string
	// UnschedulableTimeout: see Reconciler.UnschedulableTimeout.
	UnschedulableTimeout time.Duration
	// HealthAddr serves /healthz and /readyz; "0" turns them off.
	HealthAddr string
	// LeaderElect makes replicas take turns: one reconciles, the others
	// wait on a Lease in LeaderElectionNamespace (the Pod's own namespace
	// in cluster when empty).
	LeaderElect             bool
	LeaderElectionNamespace string
	// QPS and Burst bound the controller's API requests (client-go's
	// defaults, 5 and 10, when zero): every task's start and end is a
	// TaskRun write, so a wide fan-out needs more than the defaults.
	QPS   float32
	Burst int
	// TektonNamespace: see Reconciler.TektonNamespace.
	TektonNamespace string
	// Webhook, when Port is set, serves the admission webhook that
	// delegates the runs of labelled namespaces (package admission).
	Webhook WebhookConfig
}

// WebhookConfig is where and how the admission webhook is served.
type WebhookConfig struct {
	// Host and Port are the address it listens on; Port 0 turns it off.
	Host string
	Port int
	// CertHosts are the names and addresses the serving certificate is
	// for: the webhook Service's DNS name in cluster, 127.0.0.1 when the
	// API server calls a controller on its own host.
	CertHosts []string
	// Configuration names the MutatingWebhookConfiguration whose caBundle
	// the controller sets to the CA it makes at start; empty: someone else
	// provides the certificate (CertDir then holds it).
	Configuration string
	// CertDir holds tls.crt and tls.key when Configuration is empty.
	CertDir string
}

// LeaderElectionID names the Lease the replicas of the controller share.
const LeaderElectionID = "pod-runner-controller.pod-runner.dev"

// Run runs the controller until ctx ends.
func Run(ctx context.Context, rc *rest.Config, cfg Config) error {
	rc = rest.CopyConfig(rc)
	if cfg.QPS > 0 {
		rc.QPS = cfg.QPS
	}
	if cfg.Burst > 0 {
		rc.Burst = cfg.Burst
	}
	scheme, err := NewScheme()
	if err != nil {
		return fmt.Errorf("scheme: %w", err)
	}
	opts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:  cfg.HealthAddr,
		LeaderElection:          cfg.LeaderElect,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: cfg.LeaderElectionNamespace,
		// A leader stopping (a rolling update) hands over at once.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only the Pods pod-runner made are watched and cached.
			&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{podspec.ManagedByLabel: podspec.ManagedBy})},
		}},
	}
	if cfg.Namespace != "" {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{cfg.Namespace: {}}
	}
	var keepCA manager.Runnable
	if cfg.Webhook.Port != 0 {
		if opts.WebhookServer, keepCA, err = cfg.Webhook.server(ctx, rc); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(rc, opts)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if cfg.Webhook.Port != 0 {
		// Served by every replica, leader or not.
		mgr.GetWebhookServer().Register(admission.Path, &webhook.Admission{Handler: admission.Delegator{ManagedBy: ManagedBy}})
		if keepCA != nil {
			if err := mgr.Add(keepCA); err != nil {
				return fmt.Errorf("webhook CA: %w", err)
			}
		}
	}
	if cfg.HealthAddr != "" && cfg.HealthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return fmt.Errorf("healthz: %w", err)
		}
		// Ready once the caches have synced: before, nothing is reconciled.
		if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(req.Context()) {
				return errors.New("caches not synced")
			}
			return nil
		}); err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("clientset: %w", err)
	}
	reconciler := func() *Reconciler {
		return &Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Logs: PodLogs{Clientset: cs},
			Exec: PodExec{Config: rc, Clientset: cs}, Pod: cfg.Pod, Recorder: mgr.GetEventRecorder("pod-runner"),
			UnschedulableTimeout: cfg.UnschedulableTimeout, TektonNamespace: cfg.TektonNamespace}
	}
	if err := reconciler().SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	// PodPipeline CustomRuns: a Reconciler of their own (log followers,
	// compile cache) on the same clients and options.
	if err := (&CustomRunReconciler{Reconciler: reconciler()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup CustomRuns: %w", err)
	}
	return mgr.Start(ctx)
}

// server is the webhook server, its certificate made here and its CA put
// in the webhook configuration's caBundle (admission.Bootstrap) and kept
// there (the Runnable, which every replica runs), unless the certificate
// is someone else's.
func (w WebhookConfig) server(ctx context.Context, rc *rest.Config) (webhook.Server, manager.Runnable, error) {
	if w.Configuration == "" {
		return webhook.NewServer(webhook.Options{Host: w.Host, Port: w.Port, CertDir: w.CertDir}), nil, nil
	}
	dir, err := os.MkdirTemp("", "pod-runner-webhook-")
	if err != nil {
		return nil, nil, fmt.Errorf("webhook certificate dir: %w", err)
	}
	ca, err := admission.Bootstrap(dir, w.CertHosts, time.Now())
	if err != nil {
		return nil, nil, err
	}
	s := runtime.NewScheme()
	if err := admissionregistrationv1.AddToScheme(s); err != nil {
		return nil, nil, err
	}
	c, err := client.New(rc, client.Options{Scheme: s})
	if err != nil {
		return nil, nil, fmt.Errorf("webhook configuration client: %w", err)
	}
	if err := admission.InjectCABundle(ctx, c, w.Configuration, ca); err != nil {
		return nil, nil, err
	}
	keep := everyReplica(func(ctx context.Context) error {
		admission.KeepCABundle(ctx, c, w.Configuration, ca, caCheckPeriod, func(err error) {
			log.FromContext(ctx).Error(err, "webhook CA not in its configuration")
		})
		return nil
	})
	return webhook.NewServer(webhook.Options{Host: w.Host, Port: w.Port, CertDir: dir}), keep, nil
}

// caCheckPeriod is how often a replica checks that the webhook
// configuration still trusts its certificate.
const caCheckPeriod = time.Minute

// everyReplica is a Runnable every replica runs, leader or not.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
