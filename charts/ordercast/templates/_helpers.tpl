{{/* Names and labels. */}}
{{- define "ordercast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ordercast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "api"). */}}
{{- define "ordercast.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "ordercast.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ordercast.secretName" -}}
{{ .Values.existingSecret | default (include "ordercast.fullname" .) }}
{{- end -}}

{{/* Settings shared by every process, including the migration Job. */}}
{{- define "ordercast.env" -}}
- name: ORDERCAST_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "ordercast.secretName" . }}, key: database-url}}
- name: ORDERCAST_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "ordercast.secretName" . }}, key: redis-url}}
{{- if eq .Values.jwt.kind "secret" }}
- name: ORDERCAST_JWT_SECRET
  valueFrom: {secretKeyRef: {name: {{ include "ordercast.secretName" . }}, key: jwt-secret}}
{{- else if eq .Values.jwt.kind "publicKey" }}
- name: ORDERCAST_JWT_PUBLIC_KEY_FILE
  value: /etc/ordercast/jwt/jwt-public-key.pem
{{- else }}
{{- fail "jwt.kind must be `secret` or `publicKey`" }}
{{- end }}
{{- with .Values.jwt.issuer }}
- name: ORDERCAST_JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
- name: ORDERCAST_JWT_AUDIENCE
  value: {{ .Values.jwt.audience | quote }}
- name: ORDERCAST_DATABASE_POOL
  value: {{ .Values.database.pool | quote }}
- name: ORDERCAST_REDIS_CLUSTER
  value: {{ .Values.redis.cluster | quote }}
- name: ORDERCAST_REDIS_PREFIX
  value: {{ .Values.redis.prefix | quote }}
- name: ORDERCAST_REDIS_POOL
  value: {{ .Values.redis.pool | quote }}
- name: ORDERCAST_STREAM_MAXLEN
  value: {{ .Values.redis.streamMaxlen | quote }}
- name: ORDERCAST_LOG_FORMAT
  value: json
{{- if and .Values.tls.caSecret .Values.tls.postgres }}
- name: ORDERCAST_DATABASE_CA_FILE
  value: /etc/ordercast/ca/ca.crt
{{- end }}
{{- if and .Values.tls.caSecret .Values.tls.redis }}
- name: ORDERCAST_REDIS_CA_FILE
  value: /etc/ordercast/ca/ca.crt
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Files from Secrets: the JWT public key (jwt.kind publicKey) and the
CA of PostgreSQL's and Redis's certificates (tls.caSecret). */}}
{{- define "ordercast.volumeMounts" -}}
{{- if or (eq .Values.jwt.kind "publicKey") .Values.tls.caSecret -}}
volumeMounts:
{{- if eq .Values.jwt.kind "publicKey" }}
  - name: jwt
    mountPath: /etc/ordercast/jwt
    readOnly: true
{{- end }}
{{- if .Values.tls.caSecret }}
  - name: ca
    mountPath: /etc/ordercast/ca
    readOnly: true
{{- end }}
{{- end -}}
{{- end -}}

{{- define "ordercast.volumes" -}}
{{- if or (eq .Values.jwt.kind "publicKey") .Values.tls.caSecret -}}
volumes:
{{- if eq .Values.jwt.kind "publicKey" }}
  - name: jwt
    secret:
      secretName: {{ include "ordercast.secretName" . }}
      items:
        - {key: jwt-public-key.pem, path: jwt-public-key.pem}
{{- end }}
{{- if .Values.tls.caSecret }}
  - name: ca
    secret:
      secretName: {{ .Values.tls.caSecret }}
      items:
        - {key: ca.crt, path: ca.crt}
{{- end }}
{{- end -}}
{{- end -}}

{{/* A duration setting ("30s", "2m", "1h" or "500ms") in whole seconds, rounded up. */}}
{{- define "ordercast.seconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}{{ div (add (trimSuffix "ms" $d | int) 999) 1000 }}
{{- else if hasSuffix "s" $d -}}{{ trimSuffix "s" $d | int }}
{{- else if hasSuffix "m" $d -}}{{ mul (trimSuffix "m" $d | int) 60 }}
{{- else if hasSuffix "h" $d -}}{{ mul (trimSuffix "h" $d | int) 3600 }}
{{- else -}}{{ fail (printf "%q: a duration is a whole number of ms, s, m or h" $d) }}
{{- end -}}
{{- end -}}
