{{/*
Names and labels shared by every template.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "ward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource's name: fullnameOverride, else `<release>-<chart>`, else the
release name alone when it already holds the chart's name. Cut to 48 characters so the longest
suffix added (`-control-plane`) still leaves a valid 63-character name.
*/}}
{{- define "ward.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "ward.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* `chart-version`, as the helm.sh/chart label wants it. */}}
{{- define "ward.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels that pick one workload's pods: never changed on upgrade (selectors are immutable). */}}
{{- define "ward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ward.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The labels on every resource of a component (`node`, `control-plane`, `storage`). */}}
{{- define "ward.labels" -}}
helm.sh/chart: {{ include "ward.chart" .root }}
{{ include "ward.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ward
{{- end -}}

{{/* The image reference both workloads run. */}}
{{- define "ward.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The node runtime's ServiceAccount name. */}}
{{- define "ward.nodeServiceAccount" -}}
{{- if .Values.serviceAccount.node.create -}}
{{- default (printf "%s-node" (include "ward.fullname" .)) .Values.serviceAccount.node.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.node.name -}}
{{- end -}}
{{- end -}}

{{/* The control plane's ServiceAccount name. */}}
{{- define "ward.controlPlaneServiceAccount" -}}
{{- if .Values.serviceAccount.controlPlane.create -}}
{{- default (printf "%s-control-plane" (include "ward.fullname" .)) .Values.serviceAccount.controlPlane.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.controlPlane.name -}}
{{- end -}}
{{- end -}}

{{/* The shared volume's claim: the existing one, or the chart's. */}}
{{- define "ward.claimName" -}}
{{- default (printf "%s-shared" (include "ward.fullname" .)) .Values.sharedStorage.existingClaim -}}
{{- end -}}

{{/* The API's scheme: HTTPS once a TLS Secret is named. */}}
{{- define "ward.apiScheme" -}}
{{- if .Values.tls.existingSecret -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* The extended resource the node runtime asks for in GPU mode. */}}
{{- define "ward.gpuResource" -}}
{{- $resource := default "nvidia.com/gpu" .Values.gpu.resourceName -}}
{{- if and (eq .Values.gpu.mode "mig") (not (hasPrefix "nvidia.com/mig-" $resource)) -}}
{{- fail (printf "gpu.mode mig needs gpu.resourceName set to a MIG profile's resource (nvidia.com/mig-<profile>, e.g. nvidia.com/mig-1g.10gb), not %q" $resource) -}}
{{- end -}}
{{- $resource -}}
{{- end -}}

{{/*
Volumes both workloads mount: the shared volume, and node-local scratch for the temporary
files and the compile cache, since the root filesystem is read-only.
*/}}
{{- define "ward.commonVolumes" -}}
- name: shared
  persistentVolumeClaim:
    claimName: {{ include "ward.claimName" . }}
- name: tmp
  emptyDir: {}
- name: cache
  emptyDir: {}
{{- end -}}

{{- define "ward.commonVolumeMounts" -}}
- name: shared
  mountPath: {{ .Values.sharedStorage.mountPath }}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /var/cache/ward
{{- end -}}

{{/* Environment both workloads have. */}}
{{- define "ward.commonEnv" -}}
- name: WARD_LOG
  value: {{ .Values.logLevel | quote }}
- name: WARD_CACHE_DIR
  value: /var/cache/ward
- name: TMPDIR
  value: /tmp
- name: WARD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}
