#pragma once
/*
 * compliance: the evidence report an auditor asks for (SOC 2 CC7/A1, ISO
 * 27001 A.5.29-A.5.30, A.8.13): over a period, backup success rates by
 * component, validation results, DR drills with their measured RTO/RPO,
 * SLA attainment, incidents with their response times, and whether the
 * audit logs verify. tidemark-monitord gathers the inputs (from the
 * services' APIs and metrics and its own state); this module summarizes
 * them and renders the printable HTML page.
 */
#include <stdint.h>

#include <jansson.h>

/**
 * tm_compliance_jobs() - summarize a backupd job list (an array of job
 * objects as GET /api/v1/backups/status "recent" gives them) over [from,
 * to): {"backups": {"total","succeeded","failed","success_rate_percent",
 * "components": {NAME: {...}}}, "validations": {"total","succeeded",
 * "failed","items": [...]}}. Jobs without a parseable "created" are
 * skipped. Returns a new reference, or NULL (out of memory).
 */
json_t *tm_compliance_jobs(const json_t *jobs, int64_t from, int64_t to);
/**
 * tm_compliance_html() - the printable page of a report object (the JSON
 * the API returns). Every value is HTML-escaped. Returns a malloc'd string
 * (caller frees) or NULL.
 */
char *tm_compliance_html(const json_t *report);
