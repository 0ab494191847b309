SELECT * FROM cloudtrail
WHERE eventSource = 'kms.amazonaws.com'
  AND eventName IN ('DisableKey', 'ScheduleKeyDeletion')
