{{/* Names and labels shared by every object of the chart. */}}

{{- define "xdplb.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's object prefix: "<release>" when it already names the chart, else "<release>-xdplb". */}}
{{- define "xdplb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "xdplb.operatorName" -}}{{ include "xdplb.fullname" . }}-operator{{- end -}}
{{- define "xdplb.agentName" -}}{{ include "xdplb.fullname" . }}-agent{{- end -}}
{{- define "xdplb.decapName" -}}{{ include "xdplb.fullname" . }}-decap{{- end -}}

{{- define "xdplb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "xdplb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: xdplb
{{- end -}}

{{/* Selector labels of one component ("operator" or "agent"): stable across upgrades. */}}
{{- define "xdplb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xdplb.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "xdplb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
