{{/* The claim every hook job shares: the operator's, or the chart's own. */}}
{{- define "identity-sync.claim" -}}
{{- .Values.storage.existingClaim | default (printf "%s-stairway" .Release.Name) -}}
{{- end -}}

{{/* The Secret holding the database URL: the operator's, or the chart's own. */}}
{{- define "identity-sync.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- $_ := required "set database.existingSecret (a Secret holding the URL) or database.url" .Values.database.url -}}
{{- printf "%s-database" .Release.Name -}}
{{- end -}}
{{- end -}}

{{/* The environment of a container that renders the site file and runs stairway. */}}
{{- define "identity-sync.siteEnv" -}}
- name: STAIRWAY_SITE
  value: {{ .Values.site.renderedPath | quote }}
- name: STAIRWAY_SITE_TEMPLATE
  value: {{ printf "%s/site.toml" .Values.site.templatePath | quote }}
- name: STAIRWAY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "identity-sync.databaseSecret" . | quote }}
      key: {{ .Values.database.secretKey | quote }}
{{- end -}}

{{/* The read-only site template, and the pod's own writable directory for site.toml. */}}
{{- define "identity-sync.siteVolumeMounts" -}}
- name: site-template
  mountPath: {{ .Values.site.templatePath | quote }}
  readOnly: true
- name: site
  mountPath: {{ dir .Values.site.renderedPath | quote }}
{{- end -}}

{{- define "identity-sync.siteVolumes" -}}
- name: site-template
  configMap:
    name: {{ printf "%s-stairway-site" .Release.Name | quote }}
- name: site
  emptyDir:
    medium: Memory
{{- end -}}
