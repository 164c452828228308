{{- define "app.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}
{{- define "app.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "app.image" -}}
{{- $img := mergeOverwrite (deepCopy .Values.image) ((.Values.global).image | default dict) -}}
{{ printf "%s:%s" $img.repository (toString $img.tag) }}
{{- end }}
