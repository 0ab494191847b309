SELECT * FROM cloudtrail
WHERE regexp_matches(lower(userAgent), '(kali|parrot|pentoo|pacu|trufflehog|s3 browser)')
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
