/**
 * The catalogue: which language a browser gets, English in Node (no
 * navigator), and German messages with parameters.
 */
import { describe, expect, it } from 'vitest';
import { de, en, lang, pickLanguage, t } from '../src/i18n';

describe('the message catalogue', () => {
  it('picks the first preferred language it has, German for any de-*, else English', () => {
    expect(pickLanguage(['de-DE'])).toBe('de');
    expect(pickLanguage(['de-AT', 'en'])).toBe('de');
    expect(pickLanguage(['DE-ch'])).toBe('de');
    expect(pickLanguage(['fr-FR', 'de-DE'])).toBe('de');
    expect(pickLanguage(['en-US', 'de-DE'])).toBe('en');
    expect(pickLanguage(['fr-FR'])).toBe('en');
    expect(pickLanguage([])).toBe('en');
  });

  it('is English where there is no navigator', () => {
    expect(lang).toBe('en');
    expect(t).toBe(en);
  });

  it('fills German messages with their parameters', () => {
    expect(de.alsoEditing({ names: ['Ann'] })).toBe('Ann hat diesen Termin ebenfalls geöffnet');
    expect(de.alsoEditing({ names: ['Ann', 'Bob'] })).toBe('Ann, Bob haben diesen Termin ebenfalls geöffnet');
    expect(de.syncPending({ count: 1 })).toBe('1 Änderung zum Hochladen');
    expect(de.imported({ count: 5, calendar: 'Arbeit' })).toBe('5 Termine in Arbeit importiert');
    expect(de.previous({ view: 'week' })).toBe('Vorherige Woche');
    expect(en.movedTo({ title: 'Lunch', start: '12:00', end: '13:00', date: '02/03/2027' })).toBe('Moved “Lunch” to 12:00–13:00, 02/03/2027');
  });
});
