package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/e7763abc/pod-runner/internal/admission"
	"github.com/e7763abc/pod-runner/internal/controller"
	"github.com/e7763abc/pod-runner/internal/podspec"
)

// controllerMain is `injector controller`: reconcile the PipelineRuns whose
// spec.managedBy is pod-runner's until SIGTERM or SIGINT.
func controllerMain(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file when running out of cluster (default: in-cluster config, then $KUBECONFIG)")
	image := fs.String("image", podspec.DefaultImage, "the pod-runner image (init and supervisor containers)")
	nativeSidecar := fs.Bool("native-sidecar", true, "run the supervisor as a native sidecar (Kubernetes 1.29+), which tkn and the Dashboard do not list as a step; --native-sidecar=false makes it the Pod's first container (Kubernetes 1.28)")
	namespace := fs.String("namespace", "", "only reconcile runs in this namespace (default: all)")
	metrics := fs.String("metrics-bind-address", "0", "address of the Prometheus metrics endpoint; 0 turns it off")
	health := fs.String("health-probe-bind-address", "0", "address of the /healthz and /readyz endpoints; 0 turns them off")
	leaderElect := fs.Bool("leader-elect", false, "take turns with other replicas through a Lease: only the leader reconciles")
	qps := fs.Float32("kube-api-qps", 50, "API requests per second the controller may make (each task's start and end is a TaskRun write)")
	tektonNS := fs.String("tekton-namespace", controller.DefaultTektonNamespace, "namespace of Tekton's feature-flags and config-defaults ConfigMaps, which runs are compiled with (a fresh install's when missing)")
	burst := fs.Int("kube-api-burst", 100, "API requests the controller may make in a burst")
	leaderNS := fs.String("leader-election-namespace", "", "namespace of the Lease (default: the controller Pod's own, in cluster)")
	entrypoints := fs.StringArray("entrypoint", nil, "the command of IMAGE for steps with no command, instead of a registry lookup: IMAGE=CMD (repeatable)")
	offline := fs.Bool("offline", false, "never look images up in a registry: steps with no command need --entrypoint")
	unschedulable := fs.Duration("unschedulable-timeout", controller.DefaultUnschedulableTimeout, "how long a run's Pod may stay unschedulable before the run fails")
	platform := fs.String("platform", "linux/"+runtime.GOARCH, "platform whose entrypoint is read from multi-platform images")
	var wh controller.WebhookConfig
	fs.IntVar(&wh.Port, "webhook-port", 0, "serve the admission webhook that delegates the PipelineRuns of namespaces labelled "+admission.NamespaceLabel+"=true on this port; 0 turns it off")
	fs.StringVar(&wh.Host, "webhook-host", "", "address the webhook listens on (default: all)")
	fs.StringVar(&wh.Configuration, "webhook-configuration", "pod-runner", "MutatingWebhookConfiguration whose caBundle is set to the CA made at start; empty: the certificate is in --webhook-cert-dir")
	fs.StringArrayVar(&wh.CertHosts, "webhook-cert-host", []string{"pod-runner-webhook.pod-runner.svc"}, "DNS name or IP address the webhook's certificate is for (repeatable)")
	fs.StringVar(&wh.CertDir, "webhook-cert-dir", "", "directory with tls.crt and tls.key, when --webhook-configuration is empty")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "injector controller: %v\n", err)
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "injector controller: %v\n", err)
		return code
	}
	over := &podspec.Overrides{Commands: map[string][]string{}}
	for _, e := range *entrypoints {
		img, cmd, err := podspec.ParseOverride(e)
		if err != nil {
			return fail(2, fmt.Errorf("--entrypoint %w", err))
		}
		over.Commands[img] = cmd
	}
	if !*offline {
		over.Next = &podspec.Registry{Platform: *platform}
	}
	rc, err := restConfig(*kubeconfig)
	if err != nil {
		return fail(2, err)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(stderr)))
	cfg := controller.Config{Namespace: *namespace, MetricsAddr: *metrics, UnschedulableTimeout: *unschedulable,
		HealthAddr: *health, LeaderElect: *leaderElect, LeaderElectionNamespace: *leaderNS, QPS: *qps, Burst: *burst, TektonNamespace: *tektonNS,
		Pod: podspec.Options{Image: *image, Resolver: over, NativeSidecar: *nativeSidecar}, Webhook: wh}
	if err := controller.Run(ctrl.SetupSignalHandler(), rc, cfg); err != nil {
		return fail(1, err)
	}
	return 0
}

// restConfig is the given kubeconfig's, or the in-cluster one, or
// $KUBECONFIG's (clientcmd's default loading rules).
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return rc, nil
	}
	if rc, err := rest.InClusterConfig(); err == nil {
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster configuration (give --kubeconfig): %w", err)
	}
	return rc, nil
}
