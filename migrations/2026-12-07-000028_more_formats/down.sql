ALTER TABLE documents DROP CONSTRAINT documents_format_check;
ALTER TABLE documents ADD CONSTRAINT documents_format_check
    CHECK (format IN ('text', 'markdown', 'html', 'pdf', 'docx'));
